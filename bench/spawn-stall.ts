/**
 * `npm run build && node dist/bench/spawn-stall.js [--mib 600] [--spawns 10]`: how long the event
 * loop of a process holding --mib MiB stalls while it starts children, directly
 * (child_process.spawn: fork() copies the page tables while the loop waits) and through the
 * spawner host (src/store/spawner.ts: one IPC message). A 1 ms timer keeps allocating small objects
 * meanwhile, as a serving process does; the figure is its largest gap.
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { spawnOwned, startSpawner, stopSpawner } from '../src/store/spawner.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '600' }, spawns: { type: 'string', default: '10' } } });
const MIB = Number(values.mib);
const SPAWNS = Number(values.spawns);

async function main() {
  startSpawner(); // while small, as the service does at start
  const held: Buffer[] = [];
  for (let i = 0; i < MIB; i++) held.push(Buffer.alloc(1 << 20, 1));
  let last = performance.now();
  let max = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
    const garbage: object[] = [];
    for (let i = 0; i < 200; i++) garbage.push({ i });
  }, 1);
  const settle = () => new Promise((r) => setTimeout(r, 200));
  const run = async (how: string, once: () => Promise<void>) => {
    await settle();
    max = 0;
    const stalls: number[] = [];
    for (let i = 0; i < SPAWNS; i++) {
      await once();
      stalls.push(Math.round(max * 10) / 10);
      max = 0;
      await new Promise((r) => setTimeout(r, 20));
    }
    stalls.sort((a, b) => a - b);
    console.log(`${how}: event-loop stall per spawn, median ${stalls[Math.floor(stalls.length / 2)]} ms, max ${stalls[stalls.length - 1]} ms (${SPAWNS} spawns, ${MIB} MiB held)`);
  };
  await run('child_process.spawn', async () => {
    const c = spawn('/bin/true', [], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise((r) => c.once('exit', r));
  });
  await run('spawner host', async () => {
    const c = await spawnOwned('/bin/true', [], { env: process.env });
    await new Promise((r) => c.once('exit', r));
  });
  clearInterval(ticker);
  stopSpawner();
  held.length = 0;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
