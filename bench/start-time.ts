// Time from `npm start` to the first 200 from /readyz, on the tree as it is (run it on a built tree:
// `npm run bench:start` builds first, then measures). Each run spawns `npm start` in its own process
// group on a free port, polls /readyz every 10 ms, prints the milliseconds, then stops the whole group
// (SIGTERM, SIGKILL after 10 s) and waits for it to exit before the next run. Several --cmd are run
// in turn (A B A B ...), so a machine shared with other work loads each the same: compare medians
// from one run of this script, never across runs. The CPU time the process tree used until ready is
// printed too: on a loaded machine it says more than the wall time.
//   npm run bench:start -- [--runs 5] [--cmd "npm start" --cmd "node dist/src/main.js"]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, treeCpuMs } from './lib/proc.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

const runs = Number(arg('runs', '5'));
const cmds = process.argv.flatMap((a, i) => (a === '--cmd' && process.argv[i + 1] !== undefined ? [process.argv[i + 1]!] : []));
if (cmds.length === 0) cmds.push('npm start');
const timeoutMs = Number(arg('timeout', '60000'));

async function ready(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

async function once(cmd: string): Promise<{ ms: number; cpuMs: number }> {
  const port = await freePort();
  // A private audit folder: the service refuses an audit folder another instance writes.
  const audit = mkdtempSync(join(tmpdir(), 'start-time-audit-'));
  const t0 = performance.now();
  const child = spawn('sh', ['-c', cmd], {
    env: { ...process.env, PORT: String(port), AUDIT_LOG_DIR: audit, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let dead = false;
  void exited.then(() => (dead = true));
  const killGroup = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* already gone */
    }
  };
  try {
    for (;;) {
      if (dead) throw new Error(`${cmd} exited before ready:\n${stderr}`);
      if (performance.now() - t0 > timeoutMs) throw new Error(`${cmd} not ready in ${timeoutMs} ms:\n${stderr}`);
      if (await ready(`http://127.0.0.1:${port}/readyz`)) return { ms: Math.round(performance.now() - t0), cpuMs: Math.round(treeCpuMs(child.pid!)) };
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    killGroup('SIGTERM');
    const t = setTimeout(() => killGroup('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
    // Chroma children (if any) are in the same group; make sure none is left.
    killGroup('SIGKILL');
    rmSync(audit, { recursive: true, force: true });
  }
}

const times = new Map<string, Array<{ ms: number; cpuMs: number }>>(cmds.map((c) => [c, []]));
for (let i = 0; i < runs; i++) {
  for (const cmd of cmds) {
    const r = await once(cmd);
    times.get(cmd)!.push(r);
    console.log(`run ${i + 1} ${cmd}: ${r.ms} ms (cpu ${r.cpuMs} ms)`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const [cmd, t] of times) {
  const ms = t.map((r) => r.ms);
  console.log(
    `${cmd}: ready (/readyz 200) median ${median(ms)} ms over ${runs} runs (min ${Math.min(...ms)}, max ${Math.max(...ms)}); ` +
      `CPU time of the process tree until ready: median ${median(t.map((r) => r.cpuMs))} ms`,
  );
}
