'use strict';
// The orphan backstop shared by the CommonJS helpers that run outside the service
// (spawner-host.cjs and chroma-launcher.cjs). Node 20 caches process.ppid, so a child polling it never
// sees its parent die; probing the original parent's pid with signal 0 does. The TypeScript twin of
// the probe is src/process-alive.ts (pidAlive).

/** Call onGone once the process that started this one no longer exists (polled every intervalMs). */
function onParentGone(onGone, intervalMs) {
  const parent = process.ppid;
  const timer = setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch (err) {
      if (err && err.code === 'ESRCH') onGone();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}

module.exports = { onParentGone };
