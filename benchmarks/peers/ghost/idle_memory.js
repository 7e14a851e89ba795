'use strict';
// A manager holding `jobs` registered recurring offloaded jobs whose cron lies far ahead (1 January,
// midnight): RSS after registration (and its growth during registration), and CPU time (user + system) used over `idle` seconds of idling.
const { JobManager, emit, jobPath, performance, runMain, sleep } = require('./common');

async function main({ jobs = 1000, idle = 5 }) {
    const manager = new JobManager({});
    const baseline = process.memoryUsage().rss;
    const start = performance.now();
    for (let i = 0; i < jobs; i++) {
        await manager.addJob({ job: jobPath('noop'), name: `idle-${i}`, at: '0 0 0 1 1 *' });
    }
    const registerMs = performance.now() - start;
    const rss = process.memoryUsage().rss;

    const before = process.cpuUsage();
    await sleep(idle * 1000);
    const used = process.cpuUsage(before);

    const extra = { jobs, idle_s: idle };
    emit('idle_rss', 'MB', { value: rss / 2 ** 20, ...extra });
    emit('idle_rss_added', 'MB', { value: (rss - baseline) / 2 ** 20, ...extra });
    emit('idle_cpu', 'ms', { value: (used.user + used.system) / 1000, ...extra });
    emit('idle_register', 'ms', { value: registerMs, ...extra });
    await manager.shutdown();
}

runMain(main);
