import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * The benchmarks' control for machine noise (bench/lib/proc.ts startBusyLoop): a busy loop in a process
 * of its own at the niceness asked for, which ends with the bench even when the bench is SIGKILLed.
 * Real processes: the bench's compiled helper in a parent that is then killed.
 */
const ROOT = resolve(import.meta.dirname, '..', '..');
const HELPER = join(ROOT, 'dist', 'bench', 'lib', 'proc.js');

/** State and niceness from /proc (null: the process is gone; a zombie counts as gone). */
function procState(pid: number): { state: string; nice: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? null : { state: fields[0]!, nice: Number(fields[16]) };
  } catch {
    return null;
  }
}
async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
});

describe('startBusyLoop (bench control)', () => {
  it('runs at the niceness asked for, busy part of each cycle, and exits once its bench is SIGKILLed', async () => {
    const code = `import(${JSON.stringify(HELPER)}).then((m) => { const c = m.startBusyLoop(17, 150, 300); console.log(c.pid); setInterval(() => {}, 1000); });`;
    const bench = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    leftovers.push(bench.pid!);
    const pid = await new Promise<number>((resolve, reject) => {
      bench.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
      bench.once('exit', (c) => reject(new Error(`the bench helper exited ${c}`)));
    });
    leftovers.push(pid);
    // `nice` execs node in place: the same pid, at niceness 17, and busy (running) at some sample.
    expect(await waitFor(() => procState(pid)?.nice === 17, 3000)).toBe(true);
    expect(await waitFor(() => procState(pid)?.state === 'R', 3000)).toBe(true);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    expect(cmdline).toContain(process.execPath);
    bench.kill('SIGKILL');
    // No exit handler runs on SIGKILL: the loop sees its bench's pid gone at its next cycle (300 ms).
    expect(await waitFor(() => procState(pid) === null, 3000)).toBe(true);
  });
});
