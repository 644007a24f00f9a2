/**
 * `node dist/bench/thread-cpu.js [--seconds 70]`: CPU time per thread group of the running
 * service (the first process whose command line runs dist/src/main.js) and its children, sampled
 * every 100 ms from /proc (Linux), grouped by process, thread (the main thread, the threads Node
 * starts with it by their offset from the pid, and threads started later) and niceness. Run it
 * beside `npm run bench:swaps` to see which threads a swap's work lands on and at what priority.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '70' } } });
const read = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};
const children = (pid: number): number[] => (read(`/proc/${pid}/task/${pid}/children`) ?? '').trim().split(' ').filter(Boolean).map(Number);
function findService(): number | null {
  for (const p of readdirSync('/proc')) if (/^\d+$/.test(p) && read(`/proc/${p}/cmdline`)?.includes('dist/src/main.js')) return Number(p);
  return null;
}

let root: number | null = null;
const last = new Map<string, number>();
const total = new Map<string, number>();
function sample(): void {
  root ??= findService();
  if (root === null) return;
  const procs: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.pop()!;
    procs.push(p);
    queue.push(...children(p));
  }
  for (const p of procs) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    const comm = (read(`/proc/${p}/comm`) ?? '?').trim();
    for (const t of tasks) {
      const stat = read(`/proc/${p}/task/${t}/stat`);
      if (!stat) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]);
      const offset = Number(t) - p;
      const thread = p !== root ? comm : offset === 0 ? 'service main thread' : offset < 40 ? `service thread pid+${offset}` : 'service thread started later';
      const key = `${thread} | nice ${f[16]}`;
      const id = `${p}/${t}`;
      total.set(key, (total.get(key) ?? 0) + ticks - (last.get(id) ?? 0));
      last.set(id, ticks);
    }
  }
}

const timer = setInterval(sample, 100);
setTimeout(() => {
  clearInterval(timer);
  if (root === null) console.log('no service process found');
  for (const [key, ticks] of [...total].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${String(ticks * 10).padStart(7)} ms  ${key}`);
}, Number(values.seconds) * 1000);
