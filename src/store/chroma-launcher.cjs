'use strict';
// Runs the Chroma server from chromadb's native binding in a child process.
// The binding's cli() blocks the thread that calls it, so it runs in a worker thread and the
// main thread stays free to (1) handle SIGTERM/SIGINT (without JS handlers the CLI logs
// "shutting down" but keeps the port and spins) and (2) exit when its parent dies, so no
// Chroma server outlives the service that started it.
const { Worker, isMainThread, workerData } = require('node:worker_threads');

if (isMainThread) {
  const binding = process.env.CHROMA_BINDING_PATH;
  if (!binding) {
    process.stderr.write('chroma-launcher: CHROMA_BINDING_PATH is not set\n');
    process.exit(64);
  }
  const worker = new Worker(__filename, { workerData: { binding, args: process.argv.slice(2) } });
  worker.on('error', (err) => {
    process.stderr.write(`chroma-launcher: ${err && err.stack ? err.stack : String(err)}\n`);
    process.exit(70);
  });
  // cli() returns when the server stops on its own (graceful shutdown, or "address not available").
  worker.on('exit', (code) => process.exit(code === 0 ? 0 : 71));
  // process.exit() joins worker threads first, and the worker never returns from the blocking
  // native cli() call: the process would hang in exit for ever (measured: an orphan survived its
  // SIGKILLed parent this way). The snapshot the server serves is private and disposable, so
  // leaving means SIGKILL to ourselves.
  const hardExit = () => process.kill(process.pid, 'SIGKILL');
  const graceMs = Number(process.env.CHROMA_LAUNCHER_GRACE_MS || 3000);
  const onSignal = () => {
    // The Rust server sees the signal too and shuts down (cli() returns, the worker exits and
    // so do we); if it has not within the grace period, go anyway.
    setTimeout(hardExit, graceMs).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // The parent holds our stdin open; when it dies (even by SIGKILL) the pipe closes. Node 20
  // caches process.ppid, so polling it never sees the parent go; the pipe is the signal, with
  // kill(originalParent, 0) as a backstop.
  const gone = hardExit;
  process.stdin.on('end', gone);
  process.stdin.on('close', gone);
  process.stdin.on('error', gone);
  process.stdin.resume();
  require('./parent-watch.cjs').onParentGone(gone, 500);
} else {
  const { cli } = require(workerData.binding);
  cli(['chroma', ...workerData.args]);
}
