/**
 * `npm run bench:swaps [-- --chunks 3000 --rounds 3 --seconds 6]`: only the serving bench's
 * fixed-rate part, for iterating on swap cost. The service at 50% of its measured c=16 dense
 * capacity, windows of steady load and of a swap every 2 s, interleaved; per window p50/p99/max
 * (from the scheduled send time), failed, the service's max event-loop delay and peak RSS (tree),
 * and write -> serving of each version (from CURRENT's rename to the service's reload.accepted event).
 * CPU: the service tree's (service, its threads, spawner host, Chroma children) per window, so the
 * CPU a swap costs is the swap windows' extra over the steady ones, divided by their swaps (a
 * figure far steadier between runs than latency percentiles); and the machine's busy share.
 * Extra service environment: `--env KEY=VALUE` (repeatable), e.g. to compare settings;
 * `--serving-index`: the versions ship serving-index.bin (loaded without a Chroma child).
 * `--bare`: the versions hold Chroma's files only (no manifest.json, no keyword-index.json), as a store
 * written by Python LangChain's Chroma: the build thread then makes the keyword index from the texts.
 * `--generator-nice N`: the load generator runs in a process of its own at niceness N (else inside
 * this process, beside the publisher's copies); each window prints the generator's own loop max.
 * `--shadow-nice N` (a control): the versions are published to a second service (a "shadow", its own
 * store folder and runtime, no requests) started at niceness N, every thread and child of it, while
 * the service measured serves its first version throughout: the swap windows then show what the same
 * swap work costs the requests when it runs in another process at that priority. Write -> serving
 * and the phases are the shadow's; CPU per swap is the shadow's tree's.
 * `--spin-nice N [--spin-ms 1000]` (a control): no swaps at all; in the swap windows a busy loop at
 * niceness N (a process of its own) runs `--spin-ms` of every 2 s instead: what any CPU work of a
 * swap's size beside the service costs its requests on this machine, whatever the work is.
 */
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BenchVersions, benchModelAndSentences, buildStore, loopDelayMaxMs, pointCurrent, startService } from './lib/fixtures.js';
import { percentile, runLoad } from './lib/load.js';
import { KEYWORD_INDEX_FILE } from '../src/store/keyword-index.js';
import { MANIFEST_FILE } from '../src/store/manifest.js';
import { pooledPercentile, runOpenLoad, runOpenLoadInChild, type OpenLoadOptions } from './lib/open-load.js';
import { cpuPerSwap, machineCpuMs, startBusyLoop, treeCpuMs, treeRssMiB } from './lib/proc.js';
import { recordServiceEvents, writeToServingMs } from './lib/sse.js';

const { values } = parseArgs({
  options: {
    chunks: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    rate: { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
    'serving-index': { type: 'boolean', default: false },
    'generator-nice': { type: 'string' },
    'shadow-nice': { type: 'string' },
    'spin-nice': { type: 'string' },
    'spin-ms': { type: 'string', default: '1000' },
    bare: { type: 'boolean', default: false },
  },
});
const DENSE = { question: 'how do retries back off when a worker fails a job', k: 4, mode: 'dense' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'rag-bench-swaps-'));
  try {
    const { model, sentences } = await benchModelAndSentences(work);
    const n = Number(values.chunks);
    const A = await buildStore(join(work, 'staging'), 'store-a', n, 'a', model, sentences, values['serving-index']);
    const B = await buildStore(join(work, 'staging'), 'store-b', n, 'b', model, sentences, values['serving-index']);
    await model.dispose();
    if (values.bare) for (const v of [A, B]) for (const f of [MANIFEST_FILE, KEYWORD_INDEX_FILE]) await rm(join(v.dir, f));
    const storeDir = join(work, 'vectorstore');
    await mkdir(storeDir);
    await cp(A.dir, join(storeDir, 'store-a'), { recursive: true });
    await pointCurrent(storeDir, 'store-a');
    const env = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const svc = await startService(work, storeDir, env);
    // The control: swaps go to a shadow service at the niceness asked for (see the header).
    const shadowNice = values['shadow-nice'] === undefined ? null : Number(values['shadow-nice']);
    let shadow: Awaited<ReturnType<typeof startService>> | null = null;
    let swapDir = storeDir;
    if (shadowNice !== null) {
      swapDir = join(work, 'vectorstore-shadow');
      await mkdir(swapDir);
      await cp(A.dir, join(swapDir, 'store-a'), { recursive: true });
      await pointCurrent(swapDir, 'store-a');
      shadow = await startService(work, swapDir, env, undefined, shadowNice);
    }
    // The service whose swaps are timed (and whose tree's CPU a swap costs).
    const swapSvc = shadow ?? svc;
    try {
      const cap = await runLoad({ url: svc.url, route: '/v1/retrieve', body: DENSE, connections: 16, durationS: 3 });
      const rate = values.rate ? Number(values.rate) : Math.round(cap.rps * 0.5);
      console.log(`${n} chunks${values['serving-index'] ? ' (versions ship serving-index.bin)' : ''}${values.bare ? ' (bare versions: Chroma files only)' : ''}; env ${JSON.stringify(env)}; c=16 ${cap.rps} req/s; open load ${rate}/s${shadow ? `; CONTROL: swaps go to a shadow service at nice ${shadowNice}, the service measured serves one version throughout` : ''}${values['spin-nice'] !== undefined ? `; CONTROL: no swaps, a busy loop at nice ${values['spin-nice']} runs ${values['spin-ms']} ms of every 2 s in the swap windows` : ''}`);
      const versions = new BenchVersions(swapDir, 4, 'store-a');
      const ac = new AbortController();
      const events = recordServiceEvents<{ storeVersion: string | null; startedAt?: string; durationMs?: number; phases?: Record<string, number> }>(swapSvc.url, ac.signal);
      const published: Array<{ version: string; at: number }> = [];
      const rows: Record<'steady' | 'swaps', Array<{ histogram: Record<string, number>; p50: number; p99: number; max: number; failed: number; loop: number; rss: number; cpuMs: number; busy: number; swaps: number }>> = { steady: [], swaps: [] };
      for (let round = 0; round < Number(values.rounds); round++) {
        for (const kind of ['steady', 'swaps'] as const) {
          await loopDelayMaxMs(svc.url);
          const rss: number[] = [];
          const sampler = setInterval(() => rss.push(treeRssMiB(svc.child.pid!)), 100);
          let stop = false;
          const swapsBefore = versions.count;
          const cpu0 = treeCpuMs(swapSvc.child.pid!);
          const machine0 = machineCpuMs();
          const spinNice = values['spin-nice'];
          // The spinner control: busy `spin-ms` of every 2 s at that niceness, for the swap window only.
          const spinner = kind === 'swaps' && spinNice !== undefined ? startBusyLoop(Number(spinNice), Number(values['spin-ms'])) : null;
          const swapper = (async () => {
            while (kind === 'swaps' && !stop && !spinner) {
              const t = Date.now();
              const version = await versions.copyIn((v) => (v % 2 ? B.dir : A.dir));
              published.push({ version, at: await versions.point(version) });
              await versions.prune();
              await sleep(Math.max(0, 2000 - (Date.now() - t)));
            }
          })();
          const load: OpenLoadOptions = { url: svc.url, route: '/v1/retrieve', body: DENSE, rate, durationS: Number(values.seconds) };
          const r = values['generator-nice'] !== undefined ? await runOpenLoadInChild(load, Number(values['generator-nice'])) : await runOpenLoad(load);
          const machine1 = machineCpuMs();
          stop = true;
          spinner?.kill('SIGKILL');
          await swapper;
          clearInterval(sampler);
          // A swap window's CPU includes the 4 s after it (no load then): the last swap's end and what follows it.
          if (kind === 'swaps') await sleep(4000);
          const cpuMs = treeCpuMs(swapSvc.child.pid!) - cpu0;
          const busy = Math.round((100 * (machine1.busy - machine0.busy)) / Math.max(1, machine1.total - machine0.total));
          const row = { histogram: r.histogram, p50: r.p50, p99: r.p99, max: r.max, failed: r.failed, loop: await loopDelayMaxMs(svc.url), rss: Math.max(...rss), cpuMs, busy, swaps: versions.count - swapsBefore };
          rows[kind].push(row);
          console.log(`${kind.padEnd(6)} p50 ${row.p50} p99 ${row.p99} max ${row.max} failed ${row.failed} loop max ${row.loop} ms rss peak ${row.rss} MiB; service CPU ${Math.round(cpuMs)} ms, machine ${busy}% busy${kind === 'swaps' ? `, ${row.swaps} swaps` : ''}; generator loop max ${r.generatorLoopMaxMs} ms (nice ${r.generatorNice})`);
        }
      }
      ac.abort();
      const serving = writeToServingMs(events, published);
      console.log(`write -> serving: ${published.length} published, ${serving.length} served; p50 ${percentile(serving, 50)} p90 ${percentile(serving, 90)} max ${percentile(serving, 100)} ms`);
      // Where write -> serving went, per served version: waiting (publication -> its build's start: the
      // watcher's quiet time, the scan, a build still running), then the build's phases (medians).
      const accepted = published.flatMap((p) => {
        const e = events.find((x) => x.type === 'reload.accepted' && x.attempt?.storeVersion === p.version);
        return e?.attempt?.startedAt ? [{ wait: Date.parse(e.attempt.startedAt) - p.at, build: e.attempt.durationMs ?? 0, phases: e.attempt.phases ?? {} }] : [];
      });
      if (accepted.length > 0) {
        const names = [...new Set(accepted.flatMap((a) => Object.keys(a.phases)))];
        const med = (xs: number[]) => (xs.length ? median(xs) : 0);
        console.log(`write -> serving, medians: waiting ${med(accepted.map((a) => a.wait))} ms, build ${med(accepted.map((a) => a.build))} ms (${names.map((n) => `${n} ${med(accepted.flatMap((a) => (a.phases[n] !== undefined ? [a.phases[n]!] : [])))}`).join(', ')})`);
      }
      const s = (k: 'steady' | 'swaps', f: 'p99' | 'loop' | 'rss') => median(rows[k].map((r) => r[f]));
      // CPU a swap costs (bench/lib/proc.ts cpuPerSwap; the same load's CPU moved 30% between two steady windows of one run).
      const perSwap = cpuPerSwap(rows.swaps.map((r, i) => ({ steadyCpuMs: rows.steady[i]?.cpuMs, swapCpuMs: r.cpuMs, swaps: r.swaps }))).map(Math.round);
      console.log(`service CPU per swap (swap window minus the steady one before it, per swap): ${perSwap.join(', ')} ms (median ${median(perSwap)}); steady windows ${rows.steady.map((r) => Math.round(r.cpuMs)).join(', ')} ms; machine busy steady ${median(rows.steady.map((r) => r.busy))}% swaps ${median(rows.swaps.map((r) => r.busy))}%`);
      const pooled = (k: 'steady' | 'swaps') => pooledPercentile(rows[k].map((r) => r.histogram), 99);
      console.log(`pooled (every request of the windows of a kind): p99 steady ${pooled('steady')} swaps ${pooled('swaps')} (${(pooled('swaps') / pooled('steady')).toFixed(2)}x)`);
      console.log(`medians: p99 steady ${s('steady', 'p99')} swaps ${s('swaps', 'p99')} (${(s('swaps', 'p99') / s('steady', 'p99')).toFixed(2)}x); loop max steady ${s('steady', 'loop')} swaps ${s('swaps', 'loop')}; rss peak steady ${s('steady', 'rss')} swaps ${s('swaps', 'rss')} (${(s('swaps', 'rss') / s('steady', 'rss')).toFixed(2)}x)`);
    } finally {
      await shadow?.stop();
      await svc.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
