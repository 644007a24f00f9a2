// chroma-serve.js, the container main of the compose profile shared-chroma, as a real process running
// the real native Chroma server: heartbeat, data in --path, SIGTERM/SIGINT -> exit 0 with the launcher
// gone, SIGKILL of chroma-serve -> the launcher goes too, port taken -> exit 1, bad arguments -> exit 2.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../src/store/chroma-serve.js';
import { pidAlive } from '../../src/process-alive.js';
import { freePort } from '../helpers/harness.js';

const SCRIPT = resolve('dist/src/store/chroma-serve.js');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rag-t-chroma-serve-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Run {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(args: string[]): Run {
  const proc = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, output: () => out, exited };
}

async function heartbeat(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/api/v2/heartbeat`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Starts chroma-serve on a fresh folder and port; resolves once Chroma answers its heartbeat. */
async function started(): Promise<Run & { port: number; launcher: number; dataDir: string }> {
  const dataDir = join(await tmp(), 'data'); // does not exist yet: chroma-serve creates it
  const port = await freePort();
  const r = run(['--path', dataDir, '--host', '127.0.0.1', '--port', String(port)]);
  let launcher = 0;
  await until('the launcher pid', () => {
    const m = /Chroma \(pid (\d+)\)/.exec(r.output());
    if (m) launcher = Number(m[1]);
    return launcher > 0;
  });
  await until('the heartbeat', () => heartbeat(port));
  cleanups.push(() => {
    if (pidAlive(launcher)) process.kill(launcher, 'SIGKILL');
  });
  return { ...r, port, launcher, dataDir };
}

describe('chroma-serve.js (real process, real Chroma)', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('answers heartbeats, keeps its data in --path, and exits 0 on %s with no launcher left', async (signal) => {
    const s = await started();
    expect(existsSync(join(s.dataDir, 'chroma.sqlite3'))).toBe(true);
    expect(pidAlive(s.launcher)).toBe(true);
    s.proc.kill(signal);
    const { code } = await s.exited;
    expect(code).toBe(0);
    expect(s.output()).toContain(`chroma-serve: ${signal}, stopping Chroma`);
    await until('the launcher to be gone', () => !pidAlive(s.launcher), 10_000);
    expect(await heartbeat(s.port)).toBe(false);
  });

  it('a SIGKILLed chroma-serve takes its launcher with it (the stdin pipe closes)', async () => {
    const s = await started();
    s.proc.kill('SIGKILL');
    await s.exited;
    await until('the launcher to be gone', () => !pidAlive(s.launcher), 15_000);
    await until('the port to stop answering', async () => !(await heartbeat(s.port)), 15_000);
  });

  it('exits 1 with RAG_CHROMA_PORT_IN_USE when the port is taken (the server itself would exit 0)', async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const r = run(['--path', join(await tmp(), 'data'), '--host', '127.0.0.1', '--port', String(port)]);
    const { code } = await r.exited;
    expect(code).toBe(1);
    expect(r.output()).toContain('RAG_CHROMA_PORT_IN_USE');
  });

  const bad: Array<[string, string[], string]> = [
    ['no --path', ['--port', '8000'], '--path is required'],
    ['a port that is not a number', ['--path', '/tmp/x', '--port', 'eighty'], 'is not a port'],
    ['port 0', ['--path', '/tmp/x', '--port', '0'], 'is not a port'],
    ['port 65536', ['--path', '/tmp/x', '--port', '65536'], 'is not a port'],
    ['a host with a space', ['--path', '/tmp/x', '--host', 'a b'], 'is not a host name'],
    ['an unknown option', ['--path', '/tmp/x', '--daemon'], "Unknown option '--daemon'"],
    ['a positional argument', ['--path', '/tmp/x', 'run'], 'positional'],
  ];
  it.each(bad)('refuses %s (RAG_CONFIG_INVALID)', (_name, args, message) => {
    expect(() => parseServeArgs(args, {})).toThrow(message);
    try {
      parseServeArgs(args, {});
    } catch (err) {
      expect((err as { code?: string }).code).toBe('RAG_CONFIG_INVALID');
    }
  });

  it('refuses a bad CHROMA_STOP_GRACE_MS, and takes the defaults otherwise', () => {
    expect(() => parseServeArgs(['--path', 'd'], { CHROMA_STOP_GRACE_MS: '5s' })).toThrow('CHROMA_STOP_GRACE_MS');
    expect(parseServeArgs(['--path', 'd'], {})).toEqual({ path: resolve('d'), host: '127.0.0.1', port: 8000, stopGraceMs: 5000 });
  });

  it('the process exits 2 on bad arguments, starting nothing', async () => {
    const r = run(['--port', 'x']);
    const { code } = await r.exited;
    expect(code).toBe(2);
    expect(r.output()).toMatch(/\[RAG_CONFIG_INVALID\]/);
  });
});
