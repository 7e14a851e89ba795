'use strict';
// N no-op inline jobs submitted back to back; the clock stops when the job bodies have counted N
// completions (not allSettled(), which resolves while up to 3 jobs still run).
const { JobManager, emit, performance, runMain } = require('./common');

async function main({ jobs = 10000 }) {
    const manager = new JobManager({});
    let completed = 0;
    let allDone;
    const finished = new Promise((resolve) => {
        allDone = resolve;
    });
    const job = async () => {
        completed += 1;
        if (completed === jobs) {
            allDone(performance.now());
        }
    };

    const start = performance.now();
    for (let i = 0; i < jobs; i++) {
        manager.addJob({ job, name: `inline-${i}`, offloaded: false });
    }
    const end = await finished;
    emit('inline_throughput', 'jobs/s', { value: (jobs * 1000) / (end - start), jobs });
    await manager.shutdown();
}

runMain(main);
