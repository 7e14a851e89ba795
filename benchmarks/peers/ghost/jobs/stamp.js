'use strict';
// Sends the wall-clock time (ms since the epoch, sub-millisecond) at which the job body starts, then 'done'.
const { parentPort } = require('worker_threads');
const { performance } = require('perf_hooks');

const startedAt = performance.timeOrigin + performance.now();
parentPort.postMessage({ startedAt });
parentPort.postMessage('done');
