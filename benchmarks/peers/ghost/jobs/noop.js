'use strict';
// An offloaded no-op job: Ghost counts a worker as finished when it posts 'done'.
const { parentPort } = require('worker_threads');

parentPort.postMessage('done');
