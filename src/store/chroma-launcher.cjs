'use strict';
// Runs the Chroma server from chromadb's native binding in a child process.
// `chroma-launcher.cjs run --path DIR ...` starts it at once. `chroma-launcher.cjs --standby` is a
// warm standby (see spawner.ts): it loads the binding (most of a start's cost) and waits for one
// line on stdin, a JSON array of the CLI's arguments, then starts the server as the first form would.
// The binding's cli() blocks the thread that calls it, so it runs in a worker thread and the
// main thread stays free to (1) handle SIGTERM/SIGINT (without JS handlers the CLI logs
// "shutting down" but keeps the port and spins) and (2) exit when its parent dies, so no
// Chroma server outlives the service that started it.
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

if (isMainThread) {
  const binding = process.env.CHROMA_BINDING_PATH;
  if (!binding) {
    process.stderr.write('chroma-launcher: CHROMA_BINDING_PATH is not set\n');
    process.exit(64);
  }
  const standby = process.argv[2] === '--standby';
  const worker = new Worker(__filename, { workerData: { binding, args: standby ? null : process.argv.slice(2) } });
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
  if (standby) {
    // The first line is the arguments; anything after it is ignored. A malformed line ends us (70).
    let line = '';
    let started = false;
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (text) => {
      if (started) return;
      line += text;
      const nl = line.indexOf('\n');
      if (nl === -1) {
        if (line.length > 65536) badArgs('an argument line over 64 KiB');
        return;
      }
      started = true;
      let args;
      try {
        args = JSON.parse(line.slice(0, nl));
      } catch {
        badArgs('an argument line that is not JSON');
      }
      if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) badArgs('arguments that are not a list of strings');
      worker.postMessage(args);
    });
  } else process.stdin.resume();
  require('./parent-watch.cjs').onParentGone(gone, 500);
} else if (workerData.args) {
  const { cli } = require(workerData.binding);
  cli(['chroma', ...workerData.args]);
} else {
  // Standby: the binding is loaded now; the server starts when the arguments come.
  const { cli } = require(workerData.binding);
  parentPort.once('message', (args) => cli(['chroma', ...args]));
}

function badArgs(what) {
  process.stderr.write(`chroma-launcher: standby got ${what}\n`);
  process.exit(70);
}
