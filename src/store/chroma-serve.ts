// A Chroma server in the foreground, for a container's main process (the compose profile
// `shared-chroma` runs it from this project's own image):
//   node dist/src/store/chroma-serve.js --path /data --host 0.0.0.0 --port 8000
// It resolves the runtime as ChromaServer does (chroma-runtime.ts: the native binding, and a private
// glibc loader where the system glibc is too old), starts chroma-launcher.cjs as its only child,
// holds the launcher's stdin pipe open (the launcher exits when that pipe closes, so it never
// outlives this process, even a SIGKILLed one), passes its output through, forwards SIGTERM/SIGINT
// to it (SIGKILL after CHROMA_STOP_GRACE_MS) and exits when it does: 0 after a forwarded signal,
// else the launcher's own status (1 when the port was taken: the server then exits 0 by itself).
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RagError, isRagError } from '../errors.js';
import { resolveChromaRuntime } from './chroma-runtime.js';

const USAGE = 'usage: node dist/src/store/chroma-serve.js --path DIR [--host 127.0.0.1] [--port 8000]';

export interface ServeOptions {
  path: string;
  host: string;
  port: number;
  stopGraceMs: number;
}

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  let values: { path?: string; host?: string; port?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { path: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (cause) {
    throw new RagError('RAG_CONFIG_INVALID', `${(cause as Error).message}; ${USAGE}`, { cause });
  }
  if (!values.path) throw new RagError('RAG_CONFIG_INVALID', `--path is required; ${USAGE}`);
  const host = values.host ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(host)) throw new RagError('RAG_CONFIG_INVALID', `--host ${JSON.stringify(host)} is not a host name or address`);
  const portText = values.port ?? '8000';
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new RagError('RAG_CONFIG_INVALID', `--port ${JSON.stringify(portText)} is not a port (1-65535)`);
  const graceText = env.CHROMA_STOP_GRACE_MS ?? '5000';
  const stopGraceMs = /^\d{1,7}$/.test(graceText) ? Number(graceText) : NaN;
  if (!Number.isFinite(stopGraceMs)) throw new RagError('RAG_CONFIG_INVALID', `CHROMA_STOP_GRACE_MS=${JSON.stringify(graceText)} is not a number of milliseconds`);
  return { path: resolve(values.path), host, port, stopGraceMs };
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGABRT: 6 };

/** Runs the server until it exits; resolves with this process's exit status. */
export async function serve(opts: ServeOptions): Promise<number> {
  try {
    mkdirSync(opts.path, { recursive: true });
  } catch (cause) {
    throw new RagError('RAG_CHROMA_START_FAILED', `cannot create the data folder ${opts.path}: ${(cause as Error).message}`, { cause });
  }
  const runtime = await resolveChromaRuntime();
  const args = [...runtime.prefixArgs, runtime.launcherPath, 'run', '--path', opts.path, '--port', String(opts.port), '--host', opts.host];
  const child = spawn(runtime.command, args, {
    env: { ...process.env, CHROMA_BINDING_PATH: runtime.bindingPath, NO_COLOR: '1', RUST_LOG: process.env.CHROMA_RUST_LOG ?? 'warn,chroma_frontend=info' },
    // stdin: the pipe the launcher watches (closed when this process dies); output passes through.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let portTaken = false;
  const scan = (chunk: Buffer) => {
    if (/not available|address already in use/i.test(chunk.toString('utf8'))) portTaken = true;
  };
  child.stdout.on('data', (c: Buffer) => {
    scan(c);
    process.stdout.write(c);
  });
  child.stderr.on('data', (c: Buffer) => {
    scan(c);
    process.stderr.write(c);
  });
  // A launcher that dies early makes writes to its stdin fail: never crash on that.
  child.stdin.on('error', () => {});
  console.log(`chroma-serve: Chroma (pid ${child.pid}) on ${opts.host}:${opts.port}, data in ${opts.path}${runtime.privateGlibcDir ? ` (glibc from ${runtime.privateGlibcDir})` : ''}`);

  let stopping: NodeJS.Signals | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal: do not wait for the grace period.
      child.kill('SIGKILL');
      return;
    }
    stopping = signal;
    console.log(`chroma-serve: ${signal}, stopping Chroma`);
    child.kill(signal);
    killTimer = setTimeout(() => child.kill('SIGKILL'), opts.stopGraceMs);
    killTimer.unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  return new Promise<number>((resolveExit, reject) => {
    child.once('error', (err) => {
      clearTimeout(killTimer);
      reject(new RagError('RAG_CHROMA_START_FAILED', `cannot start ${runtime.command}: ${err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(killTimer);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      if (stopping) {
        console.log(`chroma-serve: Chroma stopped (${signal ? `signal ${signal}` : `code ${code}`})`);
        resolveExit(0);
      } else if (portTaken) {
        console.error(`chroma-serve: [RAG_CHROMA_PORT_IN_USE] port ${opts.port} on ${opts.host} is in use by another process`);
        resolveExit(1);
      } else {
        console.error(`chroma-serve: Chroma exited on its own (${signal ? `signal ${signal}` : `code ${code}`})`);
        resolveExit(signal ? 128 + (SIGNAL_NUMBERS[signal] ?? 0) : (code ?? 1));
      }
    });
  });
}

const isMain = process.argv[1] !== undefined && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href;
if (isMain) {
  try {
    const opts = parseServeArgs(process.argv.slice(2));
    process.exitCode = await serve(opts);
  } catch (err) {
    console.error(`chroma-serve: ${isRagError(err) ? `[${err.code}] ` : ''}${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = isRagError(err) && err.code === 'RAG_CONFIG_INVALID' ? 2 : 1;
  }
}
