'use strict';
// N offloaded no-op jobs added at once (one worker_thread each); the clock stops when all have completed.
const { JobManager, emit, jobPath, performance, runMain } = require('./common');

async function main({ jobs = 200 }) {
    const manager = new JobManager({});
    const names = Array.from({ length: jobs }, (_, i) => `burst-${i}`);
    const completions = names.map((name) => manager.awaitCompletion(name));

    const start = performance.now();
    const added = names.map((name) => manager.addJob({ job: jobPath('noop'), name }));
    await Promise.all(completions);
    const elapsed = performance.now() - start;
    await Promise.all(added);
    emit('offloaded_burst', 'ms', { value: elapsed, jobs });
    emit('offloaded_burst_peak_rss', 'MB', { value: peakRss / 2 ** 20, jobs });
    await manager.shutdown();
}

// Sampled every 50 ms while the burst runs: one worker_thread per job makes the burst memory-hungry.
let peakRss = process.memoryUsage().rss;
setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50).unref();

runMain(main);
