// Diagnostic preload: logs every main-thread callback that runs over 25 ms (with its async
// resource type) and every gap over 40 ms in a 5 ms timer, to stderr.
//   node --import ./bench/lib/long-callbacks.mjs dist/src/main.js
// Used to check where swap-time event-loop stalls come from (see the issue-13 note).
import { createHook, executionAsyncId } from 'node:async_hooks';
import { isMainThread } from 'node:worker_threads';
import { writeSync } from 'node:fs';
if (isMainThread) {
  const types = new Map(); const starts = new Map();
  createHook({
    init(id, type) { types.set(id, type); },
    before(id) { starts.set(id, performance.now()); },
    after(id) { const s = starts.get(id); if (s !== undefined) { const d = performance.now() - s; starts.delete(id); if (d > 25) writeSync(2, `LONGCB ${Math.round(performance.now())} ${types.get(id)} ${d.toFixed(1)}ms\n`); } },
    destroy(id) { types.delete(id); },
  }).enable();
  let last = performance.now();
  setInterval(() => { const n = performance.now(); if (n - last > 40) writeSync(2, `GAP ${Math.round(n)} ${(n - last).toFixed(1)}ms\n`); last = n; }, 5).unref();
}
