'use strict';
// An every-second cron job ('* * * * * *', offloaded) for `duration` seconds, added when the wall clock is
// `offset` ms past a second boundary (random when offset < 0). The worker records the wall-clock time its
// body starts. Lateness = that time mod 1000 ms; jitter = tick interval - 1000 ms. Note that bree/later
// does not align this cron to the wall clock: it fires at the offset at which the job was added.
const { JobManager, emit, jobPath, runMain, sleep, waitForOffset, wallNow } = require('./common');

async function main({ duration = 10, offset = 400 }) {
    const ticks = [];
    const manager = new JobManager({
        workerMessageHandler: ({ message }) => {
            if (message && typeof message.startedAt === 'number') {
                ticks.push(message.startedAt);
            }
        },
    });
    const startOffset = offset >= 0 ? offset : Math.random() * 1000;
    await waitForOffset(startOffset);
    const startedAt = wallNow();
    await manager.addJob({ job: jobPath('stamp'), name: 'every-second', at: '* * * * * *' });
    // ~0.3 s past `duration` (as in perf-anchors.md), so that a 10 s run collects 10 ticks.
    await sleep(startedAt + duration * 1000 + 300 - wallNow());
    await manager.shutdown();

    const lateness = ticks.map((t) => t % 1000);
    const jitter = ticks.slice(1).map((t, i) => t - ticks[i] - 1000);
    const extra = { duration_s: duration, start_offset_ms: startOffset };
    emit('punctuality_lateness', 'ms', { samples: lateness, ...extra });
    emit('punctuality_jitter', 'ms', { samples: jitter, ...extra });
}

runMain(main);
