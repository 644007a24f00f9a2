/**
 * `npm run bench:serving [-- --quick] [-- --sizes 1000,10000,100000] [-- --growth-only]`: the serving engine against
 * its peers in one run on one machine, written to bench/results/serving-<date>[-quick].json/.md,
 * then compared with the last committed results (a before/after table; it warns, never fails).
 *
 * - Closed loop (autocannon) on /v1/retrieve: this service dense c=1/16/64, hybrid c=1/16; at c=16
 *   the naive LangChain.js peer, its fair-reload variant, the in-process LangChain.js peer
 *   (MemoryVectorStore, same model) and an empty Express handler.
 * - Open model at 50% of each system's measured c=16 capacity: steady, then a swap every 2 s
 *   (p50/p99/max from the scheduled send time, failed, max event-loop delay, peak RSS); for this
 *   service twice: versions as `npm run ingest` publishes them (with serving-index.bin), then the
 *   same records as Python LangChain writes them (read through Chroma; the first of those, whose
 *   loader child starts cold, in a window of its own). The load generator runs in a process of its
 *   own; this process is the publisher. Then a control for machine noise: the same windows with no
 *   swap, a nice-19 busy loop of a Chroma-read swap's measured CPU in a process of its own instead.
 * - Cost growth per store size: build, start to ready, write -> serving for one swap, RSS, req/s.
 *   `--growth-only` runs just this table (for the big sizes, which take most of an hour) and writes
 *   serving-<date>-growth.json/.md.
 */
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { listFiles } from '../src/store/manifest.js';
import { runLoad, type LoadResult } from './lib/load.js';
import { pooledPercentile, runOpenLoadInChild, type OpenLoadOptions, type OpenLoadResult } from './lib/open-load.js';
import { cpuPerSwap, freePort, startBusyLoop, startNode, treeCpuMs, treeRssMiB } from './lib/proc.js';
import { BenchVersions, benchModelAndSentences, buildStore, loopDelayMaxMs, pointCurrent, startService } from './lib/fixtures.js';
import { recordServiceEvents, writeToServingMs } from './lib/sse.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, 'growth-only': { type: 'boolean', default: false }, sizes: { type: 'string' }, out: { type: 'string', default: join(ROOT, 'bench', 'results') } },
});
const QUICK = values.quick;
const P = QUICK ? { chunks: 3000, dur: 3, openS: 6, sizes: [1000, 3000] } : { chunks: 10_000, dur: 8, openS: 20, sizes: [1000, 10_000, 100_000] };
if (values.sizes) P.sizes = values.sizes.split(',').map(Number);
const SWAP_EVERY_MS = 2000;
const DENSE = { question: 'how do retries back off when a worker fails a job', k: 4, mode: 'dense' };
const HYBRID = { ...DENSE, mode: 'hybrid' };
const log = (...a: unknown[]) => console.log(`[serving ${new Date().toISOString().slice(11, 19)}]`, ...a);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Open-model load from a process of its own (nice 0, as a client is): this process copies the new
 * versions in (the publisher), and its copies' callbacks on one event loop with the generator
 * delayed the generator's sends by up to 45 ms in swap windows (its own loop max, 11-13 ms in steady
 * ones), latency the service never caused. In production the publisher and the clients are
 * different processes too.
 */
const runOpenLoad = (options: OpenLoadOptions) => runOpenLoadInChild(options, 0);

type Peer = Awaited<ReturnType<typeof startNode>> & { url: string; name: string };
async function startPeer(name: string, script: string, args: string[]): Promise<Peer> {
  const port = await freePort();
  const proc = await startNode(join(ROOT, 'dist', 'bench', script), [...args, '--port', String(port)], {}, /listening/, 600_000);
  return { ...proc, url: `http://127.0.0.1:${port}`, name };
}

/** Copy a version's files except its manifest into a flat folder (what the peers serve). */
async function copyFlat(src: string, dst: string) {
  for (const rel of await listFiles(src)) if (rel !== 'manifest.json') await cp(join(src, rel), join(dst, rel), { recursive: true });
}


function rssSampler(pid: number) {
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(treeRssMiB(pid)), 100);
  return { stop: () => (clearInterval(timer), samples) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

interface SwapWindow {
  open: OpenLoadResult;
  rssPeakMiB: number;
  swaps: number;
  loopMaxMs?: number;
  servingMs?: { p50: number; p90: number; max: number };
}

async function main() {
  const started = new Date();
  const work = await mkdtemp(join(tmpdir(), 'rag-bench-serving-'));
  log(`work dir ${work}; mode ${QUICK ? 'quick' : 'full'}; ${cpus().length} cores (shared: numbers are from a machine other work also runs on)`);
  const { modelDir, model, sentences } = await benchModelAndSentences(work);
  const staging = join(work, 'staging');
  const results: Record<string, unknown> = { date: started.toISOString(), mode: QUICK ? 'quick' : 'full', params: P, machine: { cpus: cpus().length, node: process.version, shared: true } };
  if (values['growth-only']) {
    const growth = await measureCostGrowth(work, model, sentences, P.sizes);
    await model.dispose();
    Object.assign(results, { mode: 'growth-only', costGrowth: growth });
    await mkdir(values.out!, { recursive: true });
    const stamp = `serving-${started.toISOString().slice(0, 10)}-growth`;
    await writeFile(join(values.out!, `${stamp}.json`), JSON.stringify(results, null, 1));
    const md = [`# Serving benchmark, cost growth only (${results.date})`, '', `Produced by \`npm run bench:serving -- --growth-only --sizes ${P.sizes.join(',')}\` on ${cpus().length} cores **shared with other work**, Node ${process.version}.`, '', ...growthTable(growth), ''].join('\n');
    await writeFile(join(values.out!, `${stamp}.md`), md);
    console.log(md);
    await rm(work, { recursive: true, force: true });
    return;
  }

  // The service's versions as `npm run ingest` publishes them by default (with serving-index.bin);
  // the same records without it (as Python LangChain or `--no-serving-index` writes them: read
  // through Chroma) for a second set of swap windows and for the peers, which read Chroma files.
  log(`building four ${P.chunks}-chunk store versions (two with serving-index.bin, two without)`);
  const A = await buildStore(staging, 'store-a', P.chunks, 'a', model, sentences, true);
  const B = await buildStore(staging, 'store-b', P.chunks, 'b', model, sentences, true);
  const A0 = await buildStore(staging, 'store-a0', P.chunks, 'a', model, sentences);
  const B0 = await buildStore(staging, 'store-b0', P.chunks, 'b', model, sentences);

  // ---- this service ----
  const storeDir = join(work, 'vectorstore');
  await mkdir(storeDir);
  await cp(A.dir, join(storeDir, 'store-a'), { recursive: true });
  await pointCurrent(storeDir, 'store-a');
  const svc = await startService(work, storeDir);
  const status = (await (await fetch(`${svc.url}/admin/status`)).json()) as { active: { store: { backend: unknown } } };
  results.backend = status.active.store.backend;
  log(`service ready in ${svc.startMs} ms, backend ${JSON.stringify(results.backend)}`);
  // The peers run beside it (idle while not measured), so closed-loop rounds can interleave all
  // systems: drift on a shared machine then hits every system alike. Medians over the rounds.
  // [name, script, serves a copy of the store, extra arguments]
  const peerDefs: Array<[string, string, boolean, string[]]> = [
    ['empty-express', 'empty-peer.js', false, []],
    ['empty-express-same-server', 'empty-peer.js', false, ['--same-server']],
    ['langchain-naive', 'naive-peer.js', true, []],
    ['langchain-fair-reload', 'naive-peer.js', true, ['--fair']],
    ['langchain-memory', 'memory-peer.js', true, []],
  ];
  const peerProcs: Array<{ name: string; peer: Peer; dir: string; hasStore: boolean }> = [];
  for (const [name, script, hasStore, extra] of peerDefs) {
    const dir = join(work, `peer-${name}`);
    await mkdir(dir);
    if (hasStore) await copyFlat(A0.dir, dir);
    const args = [...(hasStore ? ['--store', dir, '--model', modelDir] : []), ...extra];
    peerProcs.push({ name, peer: await startPeer(name, script, args), dir, hasStore });
  }
  const ROUNDS = QUICK ? 3 : 5;
  const ROUND_S = QUICK ? 2 : 4;
  const targets: Array<[string, string, unknown]> = [['this-dense', svc.url, DENSE], ['this-hybrid', svc.url, HYBRID], ...peerProcs.map((p): [string, string, unknown] => [p.name, p.peer.url, DENSE])];
  const rounds: Record<string, LoadResult[]> = {};
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, body] of targets) {
      (rounds[name] ??= []).push(await runLoad({ url, route: '/v1/retrieve', body, connections: 16, durationS: ROUND_S }));
    }
    log(`round ${round + 1}: ${targets.map(([n]) => `${n} ${rounds[n]!.at(-1)!.rps}`).join(', ')}`);
  }
  const med = (xs: LoadResult[]) => [...xs].sort((a, b) => a.rps - b.rps)[Math.floor(xs.length / 2)]!;
  const closed: Record<string, LoadResult> = {};
  closed['dense-c1'] = await runLoad({ url: svc.url, route: '/v1/retrieve', body: DENSE, connections: 1, durationS: P.dur });
  closed['dense-c16'] = med(rounds['this-dense']!);
  closed['dense-c64'] = await runLoad({ url: svc.url, route: '/v1/retrieve', body: DENSE, connections: 64, durationS: P.dur });
  closed['hybrid-c1'] = await runLoad({ url: svc.url, route: '/v1/retrieve', body: HYBRID, connections: 1, durationS: P.dur });
  closed['hybrid-c16'] = med(rounds['this-hybrid']!);
  for (const [k, r] of Object.entries(closed)) log(`this ${k}: ${r.rps} req/s p50 ${r.p50} p99 ${r.p99} errors ${r.errors + r.non2xx}`);
  const peers: Record<string, { c16: LoadResult; rounds: number[]; steady?: SwapWindow; swaps?: SwapWindow }> = {};
  for (const p of peerProcs) peers[p.name] = { c16: med(rounds[p.name]!), rounds: rounds[p.name]!.map((r) => r.rps) };
  results.rounds = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, v.map((r) => r.rps)]));

  // Open model at 50% of capacity: steady and swap windows interleaved (steady, swaps, steady,
  // swaps) so drift on a shared machine hits both alike; the p99 ratio uses each kind's median.
  const rate = Math.max(10, Math.round(closed['dense-c16']!.rps * 0.5));
  const versions = new BenchVersions(storeDir, 6, 'store-a');
  /**
   * Steady and swap windows interleaved (steady, swaps, steady, swaps), the swaps alternating
   * between two versions' files copied in as new versions. With `busyLoop` (the control for machine
   * noise) no version is published: the "swaps" windows run a busy loop in a process of its own at
   * that niceness instead, `busyMs` of every SWAP_EVERY_MS.
   */
  async function swapWindows(label: string, a: { dir: string }, b: { dir: string }, busyLoop?: { nice: number; busyMs: number }) {
    const ac = new AbortController();
    const events = recordServiceEvents(svc.url, ac.signal);
    const swapTimes: Array<{ version: string; at: number }> = [];
    const windows: { steady: SwapWindow[]; swaps: SwapWindow[] } = { steady: [], swaps: [] };
    const cpuMs: { steady: number[]; swaps: number[] } = { steady: [], swaps: [] };
    for (let round = 0; round < 2; round++) {
      for (const kind of ['steady', 'swaps'] as const) {
        await loopDelayMaxMs(svc.url); // reset the service's histogram
        const rss = rssSampler(svc.child.pid!);
        let stopSwaps = false;
        let n = 0;
        const cpu0 = treeCpuMs(svc.child.pid!);
        const spinner = kind === 'swaps' && busyLoop ? startBusyLoop(busyLoop.nice, busyLoop.busyMs, SWAP_EVERY_MS) : null;
        const swapper = (async () => {
          while (kind === 'swaps' && !stopSwaps && !spinner) {
            const t = Date.now();
            const version = await versions.copyIn((v) => (v % 2 ? b.dir : a.dir));
            swapTimes.push({ version, at: await versions.point(version) });
            n++;
            await versions.prune();
            await sleep(Math.max(0, SWAP_EVERY_MS - (Date.now() - t)));
          }
        })();
        const res = await runOpenLoad({ url: svc.url, route: '/v1/retrieve', body: DENSE, rate, durationS: P.openS });
        stopSwaps = true;
        spinner?.kill('SIGKILL');
        await swapper;
        const samples = rss.stop();
        const controlMaxMs = res.generatorLoopMaxMs;
        windows[kind].push({ open: res, rssPeakMiB: Math.max(...samples), swaps: n, loopMaxMs: await loopDelayMaxMs(svc.url), rssMedianMiB: median(samples), controlLoopMaxMs: controlMaxMs } as SwapWindow);
        const w = windows[kind].at(-1)!;
        log(`this (${label}) open ${rate}/s ${kind}${kind === 'swaps' ? ` (${n} published)` : ''}: p50 ${res.p50} p99 ${res.p99} max ${res.max} failed ${res.failed}${res.failed ? ` ${JSON.stringify(res.failures)}` : ''}; loop max ${w.loopMaxMs} ms (the load generator's own loop: ${controlMaxMs} ms); RSS peak ${w.rssPeakMiB} MiB`);
        if (kind === 'swaps') await sleep(4000); // let the last build finish before the next steady window
        // The service tree's CPU in the window (a swap window's includes the 4 s after it: its last build).
        cpuMs[kind].push(treeCpuMs(svc.child.pid!) - cpu0);
      }
    }
    ac.abort();
    const accepted = writeToServingMs(events, swapTimes);
    const superseded = events.filter((x) => x.type === 'reload.superseded').length;
    const sorted = [...accepted].sort((x, y) => x - y);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
    const pick = (ws: SwapWindow[]) => ws.reduce((x, y) => (y.open.p99 > x.open.p99 ? y : x)); // the worse window of each kind
    const steadyRssMiB = median(windows.steady.map((w) => (w as SwapWindow & { rssMedianMiB: number }).rssMedianMiB));
    const p99Steady = median(windows.steady.map((w) => w.open.p99));
    const p99Swaps = median(windows.swaps.map((w) => w.open.p99));
    const swapPeakRss = Math.max(...windows.swaps.map((w) => w.rssPeakMiB));
    // Every request of the windows of one kind together: less at the mercy of one window's stall.
    const pooled = { steady: pooledPercentile(windows.steady.map((w) => w.open.histogram), 99), swaps: pooledPercentile(windows.swaps.map((w) => w.open.histogram), 99) };
    const pooledP99 = { ...pooled, ratio: round(pooled.swaps / pooled.steady) };
    // CPU a swap costs the service's tree (the same figure as bench:swaps prints).
    const perSwap = cpuPerSwap(windows.swaps.map((w, i) => ({ steadyCpuMs: cpuMs.steady[i], swapCpuMs: cpuMs.swaps[i]!, swaps: w.swaps })));
    const cpuPerSwapMs = perSwap.length ? Math.round(median(perSwap)) : NaN;
    const out = {
      pooledP99,
      steady: pick(windows.steady),
      swaps: { ...pick(windows.swaps), swaps: swapTimes.length, loopMaxMs: Math.max(...windows.swaps.map((w) => w.loopMaxMs ?? NaN)), servingMs: { p50: pct(50), p90: pct(90), max: sorted.at(-1) ?? NaN } },
      windows,
      served: { published: swapTimes.length, accepted: accepted.length, superseded },
      cpuPerSwapMs,
      ...(busyLoop ? { busyLoop } : {}),
    };
    log(`this (${label}): ${swapTimes.length} published, ${accepted.length} served, ${superseded} superseded; write->serving p50 ${pct(50)} p90 ${pct(90)} ms; p99 steady ${p99Steady} swaps ${p99Swaps} (pooled ${pooledP99.steady} / ${pooledP99.swaps}: ${pooledP99.ratio}x); RSS steady ${steadyRssMiB} peak ${swapPeakRss}`);
    return { out, p99Steady, p99Swaps, steadyRssMiB, swapPeakRss, cpuPerSwapMs };
  }
  // Versions with serving-index.bin (the default publish) first, then versions read through Chroma.
  const withIndex = await swapWindows('versions with serving-index.bin', A, B);
  // The first version read through Chroma after serving-index versions starts its loader child cold
  // (no standby is kept while such versions serve): measured on its own, in one window with that one
  // swap, so the swap windows below measure a service that keeps getting such versions (standby warm).
  const coldSwitch = await (async () => {
    await loopDelayMaxMs(svc.url);
    const ac = new AbortController();
    const events = recordServiceEvents(svc.url, ac.signal);
    const load = runOpenLoad({ url: svc.url, route: '/v1/retrieve', body: DENSE, rate, durationS: P.openS });
    await sleep(2000);
    const version = await versions.copyIn(A0.dir);
    const at = await versions.point(version);
    const res = await load;
    const loopMaxMs = await loopDelayMaxMs(svc.url);
    ac.abort();
    const servingMs = writeToServingMs(events, [{ version, at }])[0] ?? NaN;
    log(`this (first version read through Chroma after serving-index ones: cold loader) open ${rate}/s: p50 ${res.p50} p99 ${res.p99} max ${res.max} failed ${res.failed}; loop max ${loopMaxMs} ms; write->serving ${servingMs} ms`);
    await sleep(4000);
    return { open: res, loopMaxMs, servingMs };
  })();
  const chromaRead = await swapWindows('versions read through Chroma', A0, B0);
  // The control for machine noise: the same windows with no swap, a nice-19 busy loop of a Chroma-read
  // swap's CPU (as just measured) in a process of its own instead. What any work of that size beside the
  // service costs its requests on this machine, whatever the work and its priority (bench/results s27).
  const busyMs = Math.max(100, Math.min(SWAP_EVERY_MS - 100, Number.isNaN(chromaRead.cpuPerSwapMs) ? 1000 : chromaRead.cpuPerSwapMs));
  const busyLoop = await swapWindows(`control: no swaps, a nice-19 busy loop ${busyMs} ms of every ${SWAP_EVERY_MS} ms`, A0, B0, { nice: 19, busyMs });
  const { p99Steady, p99Swaps, steadyRssMiB, swapPeakRss } = withIndex;
  const open: Record<string, Record<string, unknown>> = { this: withIndex.out, thisChromaRead: { ...chromaRead.out, coldSwitch }, busyLoopControl: busyLoop.out };
  // Write -> serving one swap at a time (the next is published once the previous serves), under
  // the same 50% open-model load: what a publisher sees when builds are not superseded.
  const ac3 = new AbortController();
  const ev3 = recordServiceEvents(svc.url, ac3.signal);
  const spacedMs: number[] = [];
  const spacedLoad = runOpenLoad({ url: svc.url, route: '/v1/retrieve', body: DENSE, rate, durationS: QUICK ? 15 : 30 });
  const spacedEnd = Date.now() + (QUICK ? 13_000 : 28_000);
  await loopDelayMaxMs(svc.url);
  while (Date.now() < spacedEnd - 1000) {
    const version = await versions.copyIn((v) => (v % 2 ? B.dir : A.dir), 'spaced');
    const t = Date.now();
    await versions.point(version);
    while (Date.now() < spacedEnd + 20_000 && !ev3.some((e) => (e.type === 'reload.accepted' || e.type === 'reload.rejected') && e.attempt?.storeVersion === version)) await sleep(10);
    const e = ev3.find((x) => x.type === 'reload.accepted' && x.attempt?.storeVersion === version);
    if (e) spacedMs.push(e.receivedAt - t);
    await versions.prune();
    await sleep(500);
  }
  const spacedOpen = await spacedLoad;
  const spacedLoop = await loopDelayMaxMs(svc.url);
  ac3.abort();
  const sp = [...spacedMs].sort((a, b) => a - b);
  (open.this as Record<string, unknown>).oneAtATime = {
    swaps: sp.length,
    writeToServingMs: { p50: sp[Math.floor(sp.length / 2)] ?? NaN, p90: sp[Math.min(sp.length - 1, Math.floor(sp.length * 0.9))] ?? NaN, max: sp.at(-1) ?? NaN },
    open: spacedOpen,
    loopMaxMs: spacedLoop,
  };
  log(`this one swap at a time (${sp.length}): write->serving ${JSON.stringify(sp)} ms; open p99 ${spacedOpen.p99} failed ${spacedOpen.failed}${spacedOpen.failed ? ` ${JSON.stringify(spacedOpen.failures)}` : ''}; loop max ${spacedLoop} ms`);
  const fin = (await (await fetch(`${svc.url}/admin/status`)).json()) as { history: Array<{ outcome: string; phases?: Record<string, number> }> };
  results.buildPhases = fin.history.filter((h) => h.outcome === 'accepted' && h.phases).map((h) => h.phases!).slice(0, 10);
  await svc.stop();

  // ---- peers: open model, steady vs a swap every 2 s ----
  for (const { name, peer, dir, hasStore } of peerProcs) {
    const c16 = peers[name]!.c16;
    if (hasStore && name !== 'langchain-naive') {
      const prate = Math.max(10, Math.round(c16.rps * 0.5));
      let s = rssSampler(peer.child.pid!);
      const st = await runOpenLoad({ url: peer.url, route: '/v1/retrieve', body: DENSE, rate: prate, durationS: P.openS });
      const stRss = s.stop();
      s = rssSampler(peer.child.pid!);
      let stop = false;
      let n = 0;
      const sw = (async () => {
        while (!stop) {
          const t = Date.now();
          n++;
          await copyFlat(n % 2 ? B.dir : A.dir, dir);
          await sleep(Math.max(0, SWAP_EVERY_MS - (Date.now() - t)));
        }
      })();
      const swr = await runOpenLoad({ url: peer.url, route: '/v1/retrieve', body: DENSE, rate: prate, durationS: P.openS });
      stop = true;
      await sw;
      const swRss = s.stop();
      peers[name]!.steady = { open: st, rssPeakMiB: Math.max(...stRss), swaps: 0 };
      peers[name]!.swaps = { open: swr, rssPeakMiB: Math.max(...swRss), swaps: n };
      (peers[name] as Record<string, unknown>).steadyRssMiB = median(stRss);
      log(`${name} open ${prate}/s steady p99 ${st.p99} failed ${st.failed}; swaps (${n}) p99 ${swr.p99} max ${swr.max} failed ${swr.failed}; RSS steady ${median(stRss)} peak ${Math.max(...swRss)} MiB`);
    }
    await peer.stop();
  }

  const growth = await measureCostGrowth(work, model, sentences, P.sizes, { chunks: P.chunks, dir: A0.dir, ms: A0.ms });
  await model.dispose();

  const d16 = closed['dense-c16']!.rps;
  const ratios = {
    denseVsMemoryPeer: round(d16 / peers['langchain-memory']!.c16.rps),
    denseVsEmptyExpress: round(d16 / peers['empty-express']!.c16.rps),
    denseVsEmptySameServer: round(d16 / peers['empty-express-same-server']!.c16.rps),
    denseVsNaivePeer: round(d16 / peers['langchain-naive']!.c16.rps),
    hybridVsDense: round(closed['hybrid-c16']!.rps / d16),
    p99SwapsVsSteady: round(p99Swaps / p99Steady),
    rssPeakSwapsVsSteady: round(swapPeakRss / steadyRssMiB),
    p99SwapsVsSteadyChromaRead: round(chromaRead.p99Swaps / chromaRead.p99Steady),
    rssPeakSwapsVsSteadyChromaRead: round(chromaRead.swapPeakRss / chromaRead.steadyRssMiB),
    p99BusyLoopVsSteady: round(busyLoop.p99Swaps / busyLoop.p99Steady),
  };
  Object.assign(results, { closed, open, peers, ratios, costGrowth: growth, swapEveryMs: SWAP_EVERY_MS, openRate: rate });
  await mkdir(values.out!, { recursive: true });
  const stamp = `serving-${started.toISOString().slice(0, 10)}${QUICK ? '-quick' : ''}`;
  const jsonPath = join(values.out!, `${stamp}.json`);
  const before = await previousResults(values.out!, QUICK, `${stamp}.json`);
  await writeFile(jsonPath, JSON.stringify(results, null, 1));
  const md = report(results, before, QUICK);
  await writeFile(join(values.out!, `${stamp}.md`), md);
  console.log(md);
  log(`wrote ${jsonPath}`);
  await rm(work, { recursive: true, force: true });
}

/**
 * Cost growth per store size: build the store, start the service on it, closed-loop dense c=16,
 * then one swap to a copy (write -> serving and the RSS peak while it builds). The first size that
 * fails records its error as the wall and ends the table.
 */
async function measureCostGrowth(
  work: string,
  model: Awaited<ReturnType<typeof benchModelAndSentences>>['model'],
  sentences: string[],
  sizes: number[],
  reuse?: { chunks: number; dir: string; ms: number },
): Promise<Array<Record<string, unknown>>> {
  const growth: Array<Record<string, unknown>> = [];
  for (const n of P.sizes) {
    try {
      const built = reuse && n === reuse.chunks ? { dir: reuse.dir, ms: reuse.ms } : await buildStore(join(work, 'staging'), `size-${n}`, n, 'c', model, sentences);
      const sdir = join(work, `vs-${n}`);
      await mkdir(sdir);
      await cp(built.dir, join(sdir, 'v1'), { recursive: true });
      await pointCurrent(sdir, 'v1');
      // Above 100k chunks a version's first open takes minutes: the phase and load limits are raised (and reported).
      const bigEnv: Record<string, string> = n > 100_000 ? { RELOAD_PHASE_TIMEOUT_MS: '3600000', INDEX_LOAD_TIMEOUT_MS: '3600000' } : {};
      const t0 = Date.now();
      const s = await startService(work, sdir, bigEnv);
      // Listening comes first; ready is the first generation serving.
      for (const until = Date.now() + 3_600_000; Date.now() < until; await sleep(200)) {
        if ((await fetch(`${s.url}/readyz`).catch(() => null))?.status === 200) break;
      }
      const readyMs = Date.now() - t0;
      const st = (await (await fetch(`${s.url}/admin/status`)).json()) as { active: { store: { backend: { kind: string; memoryMiB: number | null; loadMs: number | null } } }; history: Array<{ phases?: Record<string, number>; durationMs: number }> };
      const r = await runLoad({ url: s.url, route: '/v1/retrieve', body: DENSE, connections: 16, durationS: P.dur });
      const steadyMiB = treeRssMiB(s.child.pid!);
      // One swap: write -> serving and the RSS peak while it builds.
      const ac2 = new AbortController();
      const ev = recordServiceEvents<{ storeVersion: string | null; durationMs: number }>(s.url, ac2.signal);
      await cp(built.dir, join(sdir, 'v2'), { recursive: true });
      const samp = rssSampler(s.child.pid!);
      const t = Date.now();
      await pointCurrent(sdir, 'v2');
      const deadline = Date.now() + (n > 100_000 ? 3_600_000 : 600_000);
      while (Date.now() < deadline && !ev.some((e) => e.type === 'reload.accepted' && e.attempt?.storeVersion === 'v2')) await sleep(20);
      const acc = ev.find((e) => e.type === 'reload.accepted' && e.attempt?.storeVersion === 'v2');
      await sleep(1500);
      const peak = Math.max(...samp.stop());
      ac2.abort();
      await s.stop();
      const row = {
        chunks: n,
        buildStoreMs: built.ms,
        readyMs,
        ...(n > 100_000 ? { env: bigEnv } : {}),
        backend: st.active.store.backend.kind,
        indexMiB: st.active.store.backend.memoryMiB,
        loadMs: st.active.store.backend.loadMs,
        writeToServingMs: acc ? acc.receivedAt - t : null,
        rssSteadyMiB: steadyMiB,
        rssPeakMiB: peak,
        rps: r.rps,
        p99: r.p99,
      };
      log(`cost ${n}: ${JSON.stringify(row)}`);
      growth.push(row);
      if (!(reuse && n === reuse.chunks)) await rm(built.dir, { recursive: true, force: true });
      await rm(sdir, { recursive: true, force: true });
    } catch (err) {
      log(`cost ${n}: stopped: ${(err as Error).message.slice(0, 300)}`);
      growth.push({ chunks: n, wall: (err as Error).message.slice(0, 300) });
      break;
    }
  }
  return growth;
}

const round = (x: number) => Math.round(x * 100) / 100;

/** The newest results of the same mode already in the folder (the last committed run, read before this run writes its own), for the before/after table. */
async function previousResults(dir: string, quick: boolean, _current: string): Promise<{ file: string; data: Record<string, unknown> } | null> {
  const files = (await readdir(dir).catch(() => [] as string[]))
    .filter((f) => /^serving-\d{4}-\d{2}-\d{2}(-quick)?\.json$/.test(f) && f.endsWith(quick ? '-quick.json' : '.json') && (quick || !f.includes('-quick')))
    .sort();
  const file = files.at(-1);
  if (!file) return null;
  return { file, data: JSON.parse(await readFile(join(dir, file), 'utf8')) };
}

const GOALS: Array<[keyof ReturnType<typeof ratioShape>, string, (v: number) => boolean, 'higher' | 'lower']> = [
  ['denseVsMemoryPeer', '>= 1.5', (v) => v >= 1.5, 'higher'],
  ['denseVsEmptyExpress', '>= 0.4', (v) => v >= 0.4, 'higher'],
  // The same ceiling on the service's own HTTP server (src/http/server.ts): the stricter reading of the goal.
  ['denseVsEmptySameServer', '>= 0.4 (same server)', (v) => v >= 0.4, 'higher'],
  ['hybridVsDense', '>= 0.8', (v) => v >= 0.8, 'higher'],
  ['p99SwapsVsSteady', '<= 1.5', (v) => v <= 1.5, 'lower'],
  ['rssPeakSwapsVsSteady', '<= 1.3', (v) => v <= 1.3, 'lower'],
  // The same two for versions without serving-index.bin (Python-built, `--no-serving-index`): read through Chroma.
  ['p99SwapsVsSteadyChromaRead', '<= 1.5', (v) => v <= 1.5, 'lower'],
  ['rssPeakSwapsVsSteadyChromaRead', '<= 1.3', (v) => v <= 1.3, 'lower'],
  ['denseVsNaivePeer', '(info)', () => true, 'higher'],
  // The control: a nice-19 busy loop of a Chroma-read swap's CPU instead of swaps (the machine's floor for the two p99 rows above).
  ['p99BusyLoopVsSteady', '(info: control)', () => true, 'lower'],
];
function ratioShape() {
  return { denseVsMemoryPeer: 0, denseVsEmptyExpress: 0, denseVsEmptySameServer: 0, denseVsNaivePeer: 0, hybridVsDense: 0, p99SwapsVsSteady: 0, rssPeakSwapsVsSteady: 0, p99SwapsVsSteadyChromaRead: 0, rssPeakSwapsVsSteadyChromaRead: 0, p99BusyLoopVsSteady: 0 };
}

function growthTable(growth: Array<Record<string, any>>): string[] {
  const L = ['## Cost growth', '', 'Versions without serving-index.bin (read through Chroma; our publisher ships none above 100,000 chunks).', '', '| chunks | backend | store build ms | start -> ready ms | index load ms | write -> serving ms | index MiB | RSS steady MiB | RSS peak (swap) MiB | req/s c=16 | p99 ms |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |'];
  for (const g of growth) {
    if (g.wall) L.push(`| ${g.chunks} | stopped: ${String(g.wall).replace(/\|/g, '/')} | | | | | | | | | |`);
    else L.push(`| ${g.chunks} | ${g.backend} | ${g.buildStoreMs} | ${g.readyMs} | ${g.loadMs} | ${g.writeToServingMs} | ${g.indexMiB} | ${g.rssSteadyMiB} | ${g.rssPeakMiB} | ${g.rps} | ${g.p99} |`);
  }
  return L;
}

function report(r: Record<string, any>, before: { file: string; data: Record<string, any> } | null, quick: boolean): string {
  const L: string[] = [];
  L.push(`# Serving benchmark (${quick ? 'quick' : 'full'}, ${r.date})`, '');
  L.push(`Produced by \`npm run bench:serving${quick ? ' -- --quick' : ''}\` on ${r.machine.cpus} cores **shared with other work** (numbers are noisy), Node ${r.machine.node}. Store: ${r.params.chunks} chunks x 100-d. Backend: \`${JSON.stringify(r.backend)}\`.`, '');
  L.push('## Goals (ratios from this one run)', '', '| Ratio | Target | Measured | Met | Before | Change |', '| --- | --- | --- | --- | --- | --- |');
  const warnings: string[] = [];
  for (const [key, target, ok, better] of GOALS) {
    const v = r.ratios[key] as number;
    const b = before?.data.ratios?.[key] as number | undefined;
    const change = b ? round(v / b) : NaN;
    // A control measures the machine, not the code: it never warns.
    if (b && !target.startsWith('(info: control') && ((better === 'higher' && change < 0.8) || (better === 'lower' && change > 1.25))) warnings.push(`${key}: ${b} -> ${v}`);
    L.push(`| ${key} | ${target} | ${v} | ${ok(v) ? 'yes' : '**no**'} | ${b ?? '-'} | ${Number.isNaN(change) ? '-' : `x${change}`} |`);
  }
  L.push('', 'Swap windows: the service\'s versions as `npm run ingest` publishes them by default (with serving-index.bin: loaded without a Chroma child; before session 19 the default bench versions had none), then the same records without it (as Python LangChain or `--no-serving-index` writes them: read through a Chroma loader child; rows `...ChromaRead`).');
  for (const [label, o] of [['With serving-index.bin', r.open.this], ['Read through Chroma', r.open.thisChromaRead]] as Array<[string, any]>) {
    if (!o) continue;
    L.push('', `${label}: ${o.served.published} versions published (one every ${r.swapEveryMs} ms), ${o.served.accepted} served, ${o.served.superseded} builds superseded by a newer version (every build that finishes serves; versions published while a build runs are not built, the newest of them is next). Max event-loop delay during swaps **${o.swaps.loopMaxMs} ms** (steady ${o.steady.loopMaxMs} ms; goal <= 20); failed ${o.swaps.open.failed}${o.swaps.open.failed ? ` (${JSON.stringify(o.swaps.open.failures ?? {})})` : ''}; write -> serving p50 ${o.swaps.servingMs.p50} ms, p90 ${o.swaps.servingMs.p90} ms, max ${o.swaps.servingMs.max} ms. Event-loop delay per window (service / the load generator's own loop as a control for machine noise): ` + ['steady', 'swaps'].map((k) => `${k} ${o.windows[k].map((w: any) => `${w.loopMaxMs}/${w.controlLoopMaxMs} ms`).join(', ')}`).join('; ') + '.');
  }
  const ctl = r.open.busyLoopControl;
  if (ctl) L.push('', `Control for machine noise (row \`p99BusyLoopVsSteady\`): the same four windows with no swap; in the "swaps" windows a busy loop in a process of its own at nice ${ctl.busyLoop.nice} runs ${ctl.busyLoop.busyMs} ms of every ${r.swapEveryMs} ms (a Chroma-read swap's CPU, measured above: ${r.open.thisChromaRead?.cpuPerSwapMs} ms per swap). Pooled p99 steady ${ctl.pooledP99.steady} ms, busy loop ${ctl.pooledP99.swaps} ms (${ctl.pooledP99.ratio}x); max event-loop delay with the busy loop ${ctl.swaps.loopMaxMs} ms (steady ${ctl.steady.loopMaxMs} ms). Where the swap rows are no worse than this one, what remains is the machine, not the swap.`);
  const cold = r.open.thisChromaRead?.coldSwitch;
  if (cold) L.push('', `The first version read through Chroma after serving-index ones (its loader child started cold: no standby is kept while serving-index versions serve), one swap in a window of its own, before the windows above: p50 ${cold.open.p50} ms, p99 ${cold.open.p99} ms, max ${cold.open.max} ms, failed ${cold.open.failed}, max event-loop delay ${cold.loopMaxMs} ms, write -> serving ${cold.servingMs} ms.`);
  L.push('', 'p99 ratio = median p99 of the two swap windows / median of the two steady windows; the open-model table shows the worse window of each kind.');
  const pooledLine = [['with serving-index.bin', r.open.this?.pooledP99], ['read through Chroma', r.open.thisChromaRead?.pooledP99]].filter(([, x]) => x).map(([k, x]) => `${k}: steady ${x.steady} ms, swaps ${x.swaps} ms (${x.ratio}x)`);
  if (pooledLine.length) L.push('', `Pooled p99 (every request of the two windows of a kind together, 0.05 ms buckets; a second view of the same runs, less decided by one window's stall): ${pooledLine.join('; ')}.`);
  const o = r.open.this;
  if (o.oneAtATime) L.push('', `One swap at a time under the same load (the next published once the previous serves): ${o.oneAtATime.swaps} swaps, write -> serving p50 ${o.oneAtATime.writeToServingMs.p50} ms, p90 ${o.oneAtATime.writeToServingMs.p90} ms, max ${o.oneAtATime.writeToServingMs.max} ms; p99 ${o.oneAtATime.open.p99} ms, failed ${o.oneAtATime.open.failed}, max event-loop delay ${o.oneAtATime.loopMaxMs} ms.`);
  L.push('', `Closed-loop rounds (c=16 req/s per round, interleaved across systems): ${Object.entries(r.rounds ?? {}).map(([k, v]) => `${k} ${(v as number[]).join('/')}`).join('; ')}.`);
  if (before) L.push('', `Before = \`${before.file}\` (the last committed run of this mode).${warnings.length ? ` **Warning: regressions beyond noise: ${warnings.join('; ')}.**` : ' No ratio moved beyond the noise band (x0.8 / x1.25).'}`);
  if (warnings.length) console.warn(`::warning::serving bench regressions: ${warnings.join('; ')}`);
  L.push('', '## Closed loop, /v1/retrieve (autocannon)', '', '| System | Mode | c | req/s | p50 ms | p99 ms | errors |', '| --- | --- | --- | --- | --- | --- | --- |');
  for (const [k, v] of Object.entries(r.closed as Record<string, LoadResult>)) L.push(`| this service | ${k.split('-')[0]} | ${v.connections} | ${v.rps} | ${v.p50} | ${v.p99} | ${v.errors + v.non2xx} |`);
  for (const [k, v] of Object.entries(r.peers as Record<string, { c16: LoadResult }>)) L.push(`| ${k} | dense | 16 | ${v.c16.rps} | ${v.c16.p50} | ${v.c16.p99} | ${v.c16.errors + v.c16.non2xx} |`);
  L.push('', `## Open model at 50% of each system's c=16 capacity, steady vs a swap every ${r.swapEveryMs} ms`, '', '| System | Window | rate/s | sent | failed | p50 ms | p99 ms | max ms | peak RSS MiB |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const rows: Array<[string, any]> = [['this service', r.open.this], ...(r.open.thisChromaRead ? [['this service, read through Chroma', r.open.thisChromaRead] as [string, any]] : []), ...Object.entries(r.peers as Record<string, any>).filter(([, v]) => v.steady)];
  for (const [name, v] of rows) {
    for (const w of ['steady', 'swaps'] as const) {
      const x = v[w];
      L.push(`| ${name} | ${w}${w === 'swaps' ? ` (${x.swaps})` : ''} | ${x.open.rate} | ${x.open.sent} | ${x.open.failed} | ${x.open.p50} | ${x.open.p99} | ${x.open.max} | ${x.rssPeakMiB} |`);
    }
  }
  L.push('', ...growthTable(r.costGrowth));
  L.push('', `Build phases of the last accepted swaps (ms): \`${JSON.stringify(r.buildPhases?.[0] ?? {})}\`.`, '');
  return L.join('\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
