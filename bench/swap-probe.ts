/**
 * `npm run swap-probe [-- --chunks 10000 --swaps 5 --load 0 --keep 4 --standby-ms N --bare --serving-index]`: write-finished -> serving for a few
 * store swaps, with the build phases of each (the numbers behind "0.75 s idle"). --load N keeps N
 * connections on /v1/retrieve while swapping. Prints main-thread stalls over 20 ms per swap (gaps in a
 * 1 ms timer, from CURRENT's rename to 800 ms after serving) and the process RSS after the first and the last swap (`--swaps 100`: the leak check).
 * Each swap copies the version in under a new name and, as a publisher does (and swap-latency's
 * BenchVersions), deletes the oldest beyond --keep once the new one serves; `--keep 0` keeps every
 * version in the folder (the watcher then holds ~10 more directory watches per version: memory that
 * grows with the folder's content, not with swaps).
 * The service runs in this process: `npm run swap-probe` gives it two malloc arenas as `npm start` does
 * and exposes gc() for the settled sample; run with `node` directly, set MALLOC_ARENA_MAX (and
 * --expose-gc) yourself.
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { writeHeapSnapshot } from 'node:v8';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.js';
import { loadEmbeddingModel } from '../src/embeddings/model-loader.js';
import { publishStoreVersion } from '../src/ingest/publish.js';
import { createSilentLogger } from '../src/observability/logger.js';
import { createService } from '../src/service.js';
import { KEYWORD_INDEX_FILE } from '../src/store/keyword-index.js';
import { BenchVersions } from './lib/fixtures.js';
import { MANIFEST_FILE } from '../src/store/manifest.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({ options: { chunks: { type: 'string', default: '10000' }, swaps: { type: 'string', default: '5' }, load: { type: 'string', default: '0' }, 'serving-index': { type: 'boolean', default: false }, bare: { type: 'boolean', default: false }, 'standby-ms': { type: 'string' }, keep: { type: 'string', default: '4' } } });
const N = Number(values.chunks);
const quiet = Number(values.swaps) > 10;

/**
 * The store version every swap publishes. Built in a function of its own so that its N chunks are
 * garbage once it returns: the service runs in this process, and the bench's own records in the
 * heap would lengthen the service's collections (74 against 31 MiB of heap at 100k).
 */
async function buildVersion(work: string, logger: ReturnType<typeof createSilentLogger>): Promise<{ dir: string }> {
  const model = await loadEmbeddingModel({ dir: join(ROOT, 'models', 'glove-sif-100d') });
  const words = 'lighthouse lens ship harbor bread yeast volcano lava orbit satellite tea leaf river mountain city train music piano garden rose'.split(' ');
  const chunks = Array.from({ length: N }, (_, i) => ({
    id: `c${i}`,
    text: `${words[i % 20]} ${words[(i * 7) % 20]} ${words[(i * 13) % 20]} record ${i} `.repeat(6),
    metadata: { source: `s${i % 10}.md`, chunk: i },
  }));
  const built = await publishStoreVersion({ outDir: join(work, 'staging'), chunks, model, logger, version: 'a', activate: false, servingIndex: values['serving-index'] });
  await model.dispose();
  // --bare: Chroma's files only, as Python LangChain writes a store (the keyword index is then built from the texts).
  if (values.bare) for (const f of [MANIFEST_FILE, KEYWORD_INDEX_FILE]) await rm(join(built.dir, f));
  return { dir: built.dir };
}

async function main() {
  const logger = createSilentLogger();
  const work = await mkdtemp(join(tmpdir(), 'rag-swapprobe-'));
  try {
    const built = await buildVersion(work, logger);
    const store = join(work, 'vs');
    await mkdir(store);
    await cp(built.dir, join(store, 'a'), { recursive: true });
    await writeFile(join(store, 'CURRENT'), 'a\n');
    const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', MODELS_DIR: join(ROOT, 'models'), VECTORSTORE_DIR: store, RUNTIME_DIR: join(work, 'rt'), AUDIT_LOG_DIR: 'off', MAX_CONCURRENT: '10000', ...(values['standby-ms'] !== undefined ? { LOADER_STANDBY_MS: values['standby-ms'] } : {}), ...(process.env.BUILD_THREAD_MAX_BUILDS ? { BUILD_THREAD_MAX_BUILDS: process.env.BUILD_THREAD_MAX_BUILDS } : {}) });
    const svc = createService(config, { logger });
    const url = await svc.start();
    const load = Number(values.load)
      ? (autocannon({ url: `${url}/v1/retrieve`, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question: 'lighthouse lens', k: 4, mode: 'dense' }), connections: Number(values.load), duration: 3600 }) as unknown as { stop(): void })
      : null;
    // Gaps in a 1 ms timer are main-thread stalls; each is printed with its offset into the swap.
    let swapStart = 0;
    let lastTick = performance.now();
    const stalls: string[] = [];
    const ticker = setInterval(() => {
      const now = performance.now();
      if (now - lastTick > 20 && swapStart) stalls.push(`${Math.round(lastTick - swapStart)}+${Math.round(now - lastTick)}`);
      lastTick = now;
    }, 1);
    const rss: number[] = [];
    /** RSS after a full collection (with --expose-gc). */
    const settled: number[] = [];
    /** heapUsed / arrayBuffers MiB and the process's thread count after each swap. */
    const heap: string[] = [];
    const keep = Number(values.keep);
    const versions = new BenchVersions(store, keep > 0 ? keep : Infinity, 'a');
    for (let i = 1; i <= Number(values.swaps); i++) {
      stalls.length = 0;
      const v = await versions.copyIn(built.dir, 's');
      const t = await versions.point(v);
      swapStart = performance.now();
      while (svc.manager.current?.store.version !== v) await new Promise((r) => setTimeout(r, 5));
      const a = svc.manager.status().history.find((h) => h.storeVersion === v && h.outcome === 'accepted')!;
      if (!quiet || i === 1 || i === Number(values.swaps)) console.log(`${v}: serving ${Date.now() - t} ms after CURRENT was renamed; build ${a.durationMs} ms ${JSON.stringify(a.phases)} store ${JSON.stringify(svc.manager.current?.store.phases)}; stalls >20 ms (offset+ms): ${stalls.join(' ') || 'none'}`);
      await new Promise((r) => setTimeout(r, 800));
      await versions.prune();
      // Stalls are counted from CURRENT's rename to 800 ms after serving: not the full collection
      // below, which the ticker would otherwise report against the next swap (~serving + 800 ms).
      swapStart = 0;
      // The sample as it falls; then, with --expose-gc (as `npm run swap-probe` runs it), a second
      // one after a full collection: what stays is retained, not garbage not yet collected (one
      // sample's ratio otherwise says mostly where the collector was: 0.97-1.10x for the same code).
      rss.push(Math.round(process.memoryUsage.rss() / 2 ** 20));
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      const mem = process.memoryUsage();
      if (gc) settled.push(Math.round(mem.rss / 2 ** 20));
      if (process.env.SWAP_PROBE_HEAP && (i === 3 || i === Number(values.swaps))) console.log('heap snapshot', writeHeapSnapshot(join(process.env.SWAP_PROBE_HEAP, `swap-${i}.heapsnapshot`)));
      heap.push(`${Math.round(mem.heapUsed / 2 ** 20)}/${Math.round(mem.arrayBuffers / 2 ** 20)}/${readdirSync('/proc/self/task').length}t`);
    }
    // RSS of this process (the service; Chroma children are separate processes) after each swap.
    const n = rss.length;
    if (n) console.log(`rss MiB after swap 1: ${rss[0]}, after swap ${n}: ${rss[n - 1]} (${(rss[n - 1]! / rss[0]!).toFixed(3)}x); min/max over the run ${Math.min(...rss)}/${Math.max(...rss)}; every 10th: ${rss.filter((_, i) => i % 10 === 0 || i === n - 1).join(" ")}; heap/arrayBuffers MiB/threads every 10th: ${heap.filter((_, i) => i % 10 === 0 || i === n - 1).join(" ")}`);
    // One sample each end says mostly where it fell (session 13: 0.91x and 1.21x for the same code):
    // also the median of the first and the last ten swaps.
    if (n >= 20) {
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const [head, tail] = [med(rss.slice(0, 10)), med(rss.slice(-10))];
      console.log(`rss MiB median of swaps 1-10: ${head}, of swaps ${n - 9}-${n}: ${tail} (${(tail / head).toFixed(3)}x)`);
    }
    if (settled.length) console.log(`rss MiB after a full collection, after swap 1: ${settled[0]}, after swap ${n}: ${settled[n - 1]} (${(settled[n - 1]! / settled[0]!).toFixed(3)}x); every 10th: ${settled.filter((_, i) => i % 10 === 0 || i === n - 1).join(' ')}`);
    clearInterval(ticker);
    load?.stop();
    await svc.stop();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
