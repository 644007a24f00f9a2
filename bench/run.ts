/**
 * `npm run bench [-- --quick]`: every scenario in one run on one machine, written to
 * bench/results/<date>[-quick].json and a Markdown report with SVG charts.
 */
import { cp, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EmbeddingBatcher } from '../src/embeddings/batcher.js';
import { loadEmbeddingModel, type EmbeddingModel } from '../src/embeddings/model-loader.js';
import { loadDocuments } from '../src/ingest/load-documents.js';
import { splitSentences } from '../src/rag/extractive-answerer.js';
import { createSilentLogger } from '../src/observability/logger.js';
import { ChromaServer } from '../src/store/chroma-server.js';
import { ChromaStore } from '../src/store/chroma-store.js';
import { listFiles } from '../src/store/manifest.js';
import { percentile, runLoad, type LoadResult } from './lib/load.js';
import { freePort, startNode, treeRssMiB } from './lib/proc.js';
import { buildStore, pointCurrent, startService } from './lib/fixtures.js';
import { readServerSentEvents } from './lib/sse.js';
import { writeReport } from './report.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, out: { type: 'string', default: join(ROOT, 'bench', 'results') } } });
const QUICK = values.quick;
const P = QUICK
  ? { chunks: 3000, dur: 3, swaps: 10, bad: 2, costSizes: [1000, 3000], naiveSwaps: 3 }
  : { chunks: 10_000, dur: 10, swaps: 100, bad: 5, costSizes: [1000, 10_000, 100_000], naiveSwaps: 10 };
const logger = createSilentLogger();
// Dense mode: the same work as the in-process limit and the naive peer; hybrid is measured on its own.
const QUESTION = { question: 'how do retries back off when a worker fails a job', k: 4, mode: 'dense' };
const HYBRID = { ...QUESTION, mode: 'hybrid' };
const log = (...a: unknown[]) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

async function sentencesOfCorpus(): Promise<string[]> {
  const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
  return documents.flatMap((d) => splitSentences(d.pageContent));
}

/** The same work as a /v1/retrieve request (micro-batched embed + one Chroma query), with no HTTP. */
async function inProcessLimit(storeVersionDir: string, model: EmbeddingModel, connections: number, durationS: number) {
  const snap = await mkdtemp(join(tmpdir(), 'rag-bench-inproc-'));
  await cp(storeVersionDir, snap, { recursive: true });
  const server = new ChromaServer({ dataDir: snap, logger });
  await server.start();
  try {
    const store = await ChromaStore.open({ url: server.url });
    const batcher = new EmbeddingBatcher(model, { maxBatch: 32, maxWaitMs: 2 });
    const lat: number[] = [];
    const end = Date.now() + durationS * 1000;
    const worker = async () => {
      while (Date.now() < end) {
        const t = performance.now();
        const v = await batcher.embed(QUESTION.question);
        await store.query(v, QUESTION.k);
        lat.push(performance.now() - t);
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: connections }, worker));
    const s = (performance.now() - t0) / 1000;
    return { connections, rps: Math.round(lat.length / s), p50: Math.round(percentile(lat, 50) * 100) / 100, p99: Math.round(percentile(lat, 99) * 100) / 100 };
  } finally {
    await server.stop();
    await rm(snap, { recursive: true, force: true });
  }
}

/** Collect reload events from the SSE stream. */
function watchEvents(url: string) {
  const events: Array<{ type: string; at: string; receivedAt: number; attempt?: { outcome: string; storeVersion: string | null; error: { code: string } | null; durationMs: number } }> = [];
  const ac = new AbortController();
  readServerSentEvents(`${url}/admin/events`, (type, data) => {
    if (type !== 'status') events.push({ ...(data as object), type, receivedAt: Date.now() } as (typeof events)[number]);
  }, ac.signal);
  return { events, close: () => ac.abort() };
}

async function waitForEvent(events: ReturnType<typeof watchEvents>['events'], from: number, pred: (e: (typeof events)[number]) => boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const e = events.slice(from).find(pred);
    if (e) return e;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('timed out waiting for a reload event');
}

async function main() {
  const started = new Date();
  const work = await mkdtemp(join(tmpdir(), 'rag-bench-'));
  log(`work dir ${work}; mode ${QUICK ? 'quick' : 'full'}`);
  await mkdir(join(work, 'models'));
  await cp(join(ROOT, 'models', 'glove-sif-100d'), join(work, 'models', 'glove-sif-100d'), { recursive: true });
  const model = await loadEmbeddingModel({ dir: join(work, 'models', 'glove-sif-100d') });
  const sentences = await sentencesOfCorpus();
  const staging = join(work, 'staging');
  const results: Record<string, unknown> = { date: started.toISOString(), mode: QUICK ? 'quick' : 'full', params: P, machine: { cpus: (await import('node:os')).cpus().length, node: process.version } };

  log(`building two ${P.chunks}-chunk store versions`);
  const A = await buildStore(staging, 'store-a', P.chunks, 'a', model, sentences);
  const B = await buildStore(staging, 'store-b', P.chunks, 'b', model, sentences);
  results.build = { chunks: P.chunks, msA: A.ms, msB: B.ms };

  // ---- steady state + under reload (this service) ----
  const storeDir = join(work, 'vectorstore');
  await mkdir(storeDir);
  await cp(A.dir, join(storeDir, 'store-a'), { recursive: true });
  await pointCurrent(storeDir, 'store-a');
  const svc = await startService(work, storeDir);
  log(`service ready in ${svc.startMs} ms (process start to listening)`);
  results.coldStartMs = svc.startMs;
  const steady: LoadResult[] = [];
  for (const route of ['/v1/retrieve', '/v1/query']) {
    for (const c of [1, 16, 64]) {
      const r = await runLoad({ url: svc.url, route, body: QUESTION, connections: c, durationS: P.dur });
      log(`steady ${route} c=${c}: ${r.rps} req/s p50 ${r.p50} p99 ${r.p99} errors ${r.errors} non2xx ${r.non2xx}`);
      steady.push(r);
    }
  }
  results.steady = steady;
  const hybrid: LoadResult[] = [];
  for (const c of [1, 16]) {
    const r = await runLoad({ url: svc.url, route: '/v1/retrieve', body: HYBRID, connections: c, durationS: P.dur });
    log(`steady hybrid /v1/retrieve c=${c}: ${r.rps} req/s p50 ${r.p50} p99 ${r.p99} errors ${r.errors}`);
    hybrid.push(r);
  }
  results.hybrid = hybrid;
  const steadyRss = treeRssMiB(svc.child.pid!);
  results.steadyRssMiB = steadyRss;

  log('in-process limit');
  const inproc = [];
  for (const c of [1, 16, 64]) {
    const r = await inProcessLimit(A.dir, model, c, P.dur);
    log(`in-process c=${c}: ${r.rps} ops/s p50 ${r.p50} p99 ${r.p99}`);
    inproc.push(r);
  }
  results.inProcess = inproc;

  log(`under reload: ${P.swaps} swaps + ${P.bad} bad artifacts during /v1/retrieve c=16`);
  const ev = watchEvents(svc.url);
  const rss: Array<[number, number]> = [];
  const t0 = Date.now();
  const sampler = setInterval(() => rss.push([Date.now() - t0, treeRssMiB(svc.child.pid!)]), 200);
  let stopLoad: () => void = () => undefined;
  const loadP = runLoad({ url: svc.url, route: '/v1/retrieve', body: QUESTION, connections: 16, untilStopped: true, timeline: true, onStart: (s) => (stopLoad = s) });
  await new Promise((r) => setTimeout(r, 1000));
  const swaps: Array<{ i: number; version: string; writeDoneAt: number; servingMs: number; buildMs: number }> = [];
  const badOutcomes: Array<{ version: string; code: string | null }> = [];
  let rssAfterFirst = 0;
  const badEvery = Math.max(1, Math.floor(P.swaps / (P.bad + 1)));
  let previous = ['store-a'];
  for (let i = 1; i <= P.swaps; i++) {
    if (i % badEvery === 0 && badOutcomes.length < P.bad) {
      const bad = `bad-${i}`;
      await cp(A.dir, join(storeDir, bad), { recursive: true });
      await truncate(join(storeDir, bad, 'chroma.sqlite3'), 8192);
      const from = ev.events.length;
      await pointCurrent(storeDir, bad);
      const e = await waitForEvent(ev.events, from, (x) => x.type === 'reload.rejected' && x.attempt?.storeVersion === bad);
      badOutcomes.push({ version: bad, code: e.attempt?.error?.code ?? null });
      await rm(join(storeDir, bad), { recursive: true, force: true });
    }
    const version = `swap-${String(i).padStart(3, '0')}`;
    await cp(i % 2 ? B.dir : A.dir, join(storeDir, version), { recursive: true });
    const from = ev.events.length;
    await pointCurrent(storeDir, version);
    const writeDoneAt = Date.now();
    const e = await waitForEvent(ev.events, from, (x) => (x.type === 'reload.accepted' || x.type === 'reload.rejected') && x.attempt?.storeVersion === version);
    if (e.type !== 'reload.accepted') throw new Error(`swap ${version} was rejected: ${JSON.stringify(e.attempt?.error)}`);
    swaps.push({ i, version, writeDoneAt: writeDoneAt - t0, servingMs: e.receivedAt - writeDoneAt, buildMs: e.attempt!.durationMs });
    // Wait for the old generation to be disposed before the next swap (what at-most-two enforces anyway).
    await waitForEvent(ev.events, from, (x) => x.type === 'generation.retired', 30_000).catch(() => undefined);
    if (i === 1) {
      await new Promise((r) => setTimeout(r, 1000));
      rssAfterFirst = treeRssMiB(svc.child.pid!);
    }
    previous.push(version);
    while (previous.length > 3) await rm(join(storeDir, previous.shift()!), { recursive: true, force: true });
  }
  await new Promise((r) => setTimeout(r, 2000));
  const rssAfterAll = treeRssMiB(svc.child.pid!);
  stopLoad();
  const underReload = await loadP;
  clearInterval(sampler);
  ev.close();
  const timeline = underReload.timeline ?? [];
  delete underReload.timeline;
  const steady16 = steady.find((s) => s.route === '/v1/retrieve' && s.connections === 16)!;
  const servingMs = swaps.map((s) => s.servingMs);
  results.underReload = {
    load: underReload,
    swaps: swaps.length,
    badArtifacts: badOutcomes,
    servingMs: { p50: percentile(servingMs, 50), p90: percentile(servingMs, 90), max: Math.max(...servingMs) },
    buildMs: { p50: percentile(swaps.map((s) => s.buildMs), 50), max: Math.max(...swaps.map((s) => s.buildMs)) },
    rss: { steadyMiB: steadyRss, peakMiB: Math.max(...rss.map((r) => r[1])), afterFirstSwapMiB: rssAfterFirst, afterAllSwapsMiB: rssAfterAll },
  };
  const svcStop = await svc.stop();
  results.shutdownExitCode = svcStop;
  log(`under reload: ${underReload.requests} requests, errors ${underReload.errors}, non2xx ${underReload.non2xx}, p99 ${underReload.p99} (steady ${steady16.p99}); serving after write p50 ${percentile(servingMs, 50)} ms max ${Math.max(...servingMs)} ms`);

  // ---- the naive peer ----
  log('naive peer');
  const naiveStore = join(work, 'naive-store');
  await mkdir(naiveStore);
  for (const rel of await listFiles(A.dir)) if (rel !== 'manifest.json') await cp(join(A.dir, rel), join(naiveStore, rel), { recursive: true });
  const naivePort = await freePort();
  const naive = await startNode(join(ROOT, 'dist', 'bench', 'naive-peer.js'), ['--store', naiveStore, '--model', join(work, 'models', 'glove-sif-100d'), '--port', String(naivePort)], {}, /naive-peer listening/);
  const naiveUrl = `http://127.0.0.1:${naivePort}`;
  const naiveSteady = await runLoad({ url: naiveUrl, route: '/v1/retrieve', body: QUESTION, connections: 16, durationS: P.dur });
  log(`naive steady c=16: ${naiveSteady.rps} req/s p50 ${naiveSteady.p50} p99 ${naiveSteady.p99} errors ${naiveSteady.errors} non2xx ${naiveSteady.non2xx}`);
  const naiveSteadyRss = treeRssMiB(naive.child.pid!);
  let stopNaive: () => void = () => undefined;
  const naiveLoadP = runLoad({ url: naiveUrl, route: '/v1/retrieve', body: QUESTION, connections: 16, untilStopped: true, onStart: (s) => (stopNaive = s) });
  const naiveRss: number[] = [];
  const naiveSampler = setInterval(() => naiveRss.push(treeRssMiB(naive.child.pid!)), 200);
  await new Promise((r) => setTimeout(r, 1000));
  for (let i = 1; i <= P.naiveSwaps; i++) {
    // The data engineer copies the new store over the served folder, as the tutorial expects.
    const src = i % 2 ? B.dir : A.dir;
    for (const rel of await listFiles(src)) if (rel !== 'manifest.json') await cp(join(src, rel), join(naiveStore, rel), { recursive: true });
    await new Promise((r) => setTimeout(r, 1500));
  }
  stopNaive();
  const naiveReload = await naiveLoadP;
  clearInterval(naiveSampler);
  await naive.stop();
  log(`naive under reload: ${naiveReload.requests} requests, errors ${naiveReload.errors}, non2xx ${naiveReload.non2xx}, p99 ${naiveReload.p99}`);
  results.naive = { steady: naiveSteady, underReload: naiveReload, swaps: P.naiveSwaps, rss: { steadyMiB: naiveSteadyRss, peakMiB: Math.max(...naiveRss) } };

  // ---- cost growth ----
  const growth = [];
  for (const n of P.costSizes) {
    const dir = n === P.chunks ? A.dir : (await buildStore(staging, `size-${n}`, n, 'c', model, sentences)).dir;
    const sdir = join(work, `vs-${n}`);
    await mkdir(sdir);
    await cp(dir, join(sdir, 'v'), { recursive: true });
    await pointCurrent(sdir, 'v');
    const s = await startService(work, sdir, { WATCH: 'false' });
    const r = await runLoad({ url: s.url, route: '/v1/retrieve', body: QUESTION, connections: 16, durationS: P.dur });
    const mem = treeRssMiB(s.child.pid!);
    await s.stop();
    log(`cost ${n} chunks: ${r.rps} req/s p50 ${r.p50} p99 ${r.p99}, RSS ${mem} MiB, ready in ${s.startMs} ms`);
    growth.push({ chunks: n, rps: r.rps, p50: r.p50, p99: r.p99, rssMiB: mem, readyMs: s.startMs });
    if (n !== P.chunks) await rm(dir, { recursive: true, force: true });
  }
  results.costGrowth = growth;

  await model.dispose();
  await mkdir(values.out!, { recursive: true });
  const stamp = started.toISOString().slice(0, 10) + (QUICK ? '-quick' : '');
  const jsonPath = join(values.out!, `${stamp}.json`);
  await writeFile(jsonPath, JSON.stringify({ ...results, timeline: { requests: timeline.filter((_, i) => i % Math.max(1, Math.floor(timeline.length / 4000)) === 0), swaps, rss } }, null, 1));
  const reportPath = await writeReport(jsonPath, `npm run bench${QUICK ? ' -- --quick' : ''}`);
  log(`wrote ${jsonPath} and ${reportPath}`);
  await rm(work, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
