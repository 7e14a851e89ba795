'use strict';
// Shared helpers for the Ghost peer scenarios. Each scenario script is one run in a fresh process: it prints
// one JSON line per raw result ({measurement, system, unit, value} or {..., samples}) and exits.
// Ghost's logger reads LEVEL when it is first required, so set it before requiring the job manager.
process.env.LEVEL = process.env.LEVEL || 'error';

const path = require('path');
const { performance } = require('perf_hooks');
const JobManager = require('@tryghost/job-manager');

const SYSTEM = 'ghost job-manager 4.0.3';

/** Parses `key=value` arguments into an object of numbers (or strings when not numeric). */
function parseArgs(argv = process.argv.slice(2)) {
    const args = {};
    for (const arg of argv) {
        const [key, ...rest] = arg.split('=');
        const raw = rest.join('=');
        args[key] = raw !== '' && !Number.isNaN(Number(raw)) ? Number(raw) : raw;
    }
    return args;
}

/** Absolute path of a worker file in ./jobs. */
function jobPath(name) {
    return path.join(__dirname, 'jobs', `${name}.js`);
}

/** Wall-clock time in ms since the epoch, with sub-millisecond resolution. */
function wallNow() {
    return performance.timeOrigin + performance.now();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when the wall clock is `offsetMs` past a second boundary (timer, then a short spin). */
async function waitForOffset(offsetMs) {
    const now = wallNow();
    let target = Math.floor(now / 1000) * 1000 + offsetMs;
    if (target - now < 50) {
        target += 1000;
    }
    await sleep(target - now - 20);
    while (wallNow() < target) {
        // spin for the last few ms: setTimeout alone is ~1 ms late
    }
}

function emit(measurement, unit, fields, system = SYSTEM) {
    process.stdout.write(`${JSON.stringify({ measurement, system, unit, ...fields })}\n`);
}

/** Runs `main(args)`, then exits: 0 on success, 1 with the error on stderr. */
function runMain(main) {
    main(parseArgs()).then(
        () => process.exit(0),
        (error) => {
            process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
            process.exit(1);
        },
    );
}

module.exports = { JobManager, SYSTEM, emit, jobPath, performance, runMain, sleep, waitForOffset, wallNow };
