'use strict';
// One offloaded no-op job at a time (bree starts a new worker_thread per job); each sample runs from
// addJob until the worker's 'done' reaches the parent. The awaitCompletion promise is created first.
// Baseline, interleaved job by job: a raw `new Worker(file)` until its first message, plus terminate()
// (as in perf-anchors.md), which shows how fast this machine starts worker threads.
const { Worker } = require('worker_threads');
const { JobManager, emit, jobPath, performance, runMain } = require('./common');

async function rawWorker(file) {
    const start = performance.now();
    const worker = new Worker(file);
    await new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
    });
    await worker.terminate();
    return performance.now() - start;
}

async function main({ jobs = 20 }) {
    const manager = new JobManager({});
    const samples = [];
    const baseline = [];
    for (let i = 0; i < jobs; i++) {
        const name = `latency-${i}`;
        const completed = manager.awaitCompletion(name);
        const start = performance.now();
        const added = manager.addJob({ job: jobPath('noop'), name });
        await completed;
        samples.push(performance.now() - start);
        await added;
        baseline.push(await rawWorker(jobPath('noop')));
    }
    emit('offloaded_latency', 'ms', { samples });
    emit('offloaded_latency', 'ms', { samples: baseline }, `node ${process.versions.node} raw Worker (baseline)`);
    await manager.shutdown();
}

runMain(main);
