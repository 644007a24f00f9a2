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
  const graceMs = Number(process.env.CHROMA_LAUNCHER_GRACE_MS || 3000);
  const onSignal = () => {
    // The Rust server sees the signal too and shuts down; give it a moment to flush, then go.
    setTimeout(() => process.exit(0), graceMs).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // The parent holds our stdin open; when it dies (even by SIGKILL) the pipe closes. Node 20
  // caches process.ppid, so polling it never sees the parent go; the pipe is the signal, with
  // kill(originalParent, 0) as a backstop. process.exit here also ends the Rust server thread.
  const parent = process.ppid;
  const gone = () => process.exit(0);
  process.stdin.on('end', gone);
  process.stdin.on('close', gone);
  process.stdin.on('error', gone);
  process.stdin.resume();
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch (err) {
      if (err && err.code === 'ESRCH') gone();
    }
  }, 500).unref();
} else {
  const { cli } = require(workerData.binding);
  cli(['chroma', ...workerData.args]);
}
