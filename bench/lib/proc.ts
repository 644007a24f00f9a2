import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Child pids from /proc (no process spawned: the sampler must not load the machine it measures). */
function children(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/** The sum of `read(pid)` over a process and all its descendants (a process gone meanwhile counts 0, its children unvisited). */
function sumOverTree(pid: number, read: (pid: number) => number): number {
  let sum = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      sum += read(p);
    } catch {
      continue;
    }
    stack.push(...children(p));
  }
  return sum;
}

/** RSS in MiB of a process and all its descendants (the service and its Chroma children). */
export function treeRssMiB(pid: number): number {
  const kb = sumOverTree(pid, (p) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0));
  return Math.round((kb / 1024) * 10) / 10;
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux x86-64 and arm64). */
const USER_HZ = 100;

/**
 * The CPU a swap costs, per swap window that published any: its tree CPU over that of the steady
 * window run just before it (the same load without swaps), divided by its swaps (ms, unrounded).
 * The machine's speed drifts within a run, so each swap window is set against its own neighbour.
 */
export function cpuPerSwap(windows: ReadonlyArray<{ steadyCpuMs: number | undefined; swapCpuMs: number; swaps: number }>): number[] {
  return windows.flatMap((w) => (w.swaps > 0 && w.steadyCpuMs !== undefined ? [(w.swapCpuMs - w.steadyCpuMs) / w.swaps] : []));
}

/**
 * CPU time in ms used by a process and all its descendants so far: each live process's own time
 * (all its threads) plus what its exited children used (cutime/cstime, once reaped), so a Chroma
 * loader child that started and ended between two calls is counted too. Monotonic while the
 * root lives; the difference of two calls is the tree's CPU over that interval (10 ms ticks).
 */
export function treeCpuMs(pid: number): number {
  const ticks = sumOverTree(pid, (p) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14-17 of proc(5): utime, stime, cutime, cstime (f[0] is field 3).
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  });
  return (ticks * 1000) / USER_HZ;
}

/** The machine's busy and total CPU time (ms, all cores) so far, from /proc/stat. */
export function machineCpuMs(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
  return { busy: ((total - idle) * 1000) / USER_HZ, total: (total * 1000) / USER_HZ };
}

export interface Proc {
  child: ChildProcess;
  output: string[];
  stop(): Promise<number | null>;
}

/**
 * Every process a bench starts, so none outlives the bench: an interrupted or failed run (Ctrl-C,
 * SIGTERM, an uncaught error) SIGKILLs what is still running as the bench process exits.
 */
const started = new Set<ChildProcess>();
let exitHook = false;
function own(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of started) c.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
}

/**
 * A control for machine noise: a process of its own at niceness `nice` that is busy `busyMs` of every
 * `everyMs` (a spin on the clock, then a sleep), standing in for a swap's CPU beside the service.
 * It ends with the bench even if the bench is SIGKILLed (each cycle checks the bench's pid). Stop it
 * with `kill()`.
 */
export function startBusyLoop(nice: number, busyMs: number, everyMs = 2000): ChildProcess {
  const code = `for (;;) { try { process.kill(${process.pid}, 0); } catch { process.exit(); } const t = Date.now(); while (Date.now() - t < ${busyMs}); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ${everyMs} - (Date.now() - t))); }`;
  const child = spawn('nice', ['-n', String(nice), process.execPath, '-e', code], { stdio: 'ignore' });
  own(child);
  return child;
}

/**
 * Spawn a node script and wait until a line matches `ready`. BENCH_NODE_FLAGS (space-separated)
 * are passed to node itself, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` (not allowed in NODE_OPTIONS).
 * BENCH_CHILD_LOG=<folder>: every line a child prints is also appended to <folder>/<pid>.log (its
 * full output, e.g. with `--trace-gc`; `output` keeps only the last 500 lines).
 */
export async function startNode(script: string, args: string[], env: Record<string, string>, ready: RegExp, timeoutMs = 60_000, nice = 0): Promise<Proc & { startMs: number }> {
  const t0 = performance.now();
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  // `nice` execs node in place (same pid): every thread and child of the process starts at that niceness.
  const argv = [process.execPath, ...flags, script, ...args];
  const [command, ...rest] = nice ? ['nice', '-n', String(nice), ...argv] : argv;
  const child = spawn(command!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  own(child);
  const output: string[] = [];
  const logDir = process.env.BENCH_CHILD_LOG;
  if (logDir) {
    mkdirSync(logDir, { recursive: true });
    const file = createWriteStream(join(logDir, `${child.pid}.log`));
    child.stdout!.pipe(file);
    child.stderr!.pipe(file);
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // never leave a half-started service behind
      reject(new Error(`${script} not ready in ${timeoutMs} ms:\n${output.slice(-20).join('\n')}`));
    }, timeoutMs);
    const onData = (b: Buffer) => {
      for (const line of b.toString().split('\n')) {
        if (!line) continue;
        output.push(line);
        if (output.length > 500) output.shift();
        if (ready.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited ${code}:\n${output.slice(-20).join('\n')}`));
    });
  });
  const startMs = Math.round(performance.now() - t0);
  return {
    child,
    output,
    startMs,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
      }),
  };
}
