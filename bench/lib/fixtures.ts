import { cp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadEmbeddingModel, type EmbeddingModel } from '../../src/embeddings/model-loader.js';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { splitSentences } from '../../src/rag/extractive-answerer.js';
import { publishStoreVersion } from '../../src/ingest/publish.js';
import { createSilentLogger } from '../../src/observability/logger.js';
import { freePort, startNode } from './proc.js';
import { rng } from './rng.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
const logger = createSilentLogger();

/** A store version of n synthetic chunks (three corpus sentences each), not activated. */
export async function buildStore(outDir: string, version: string, n: number, edition: string, model: EmbeddingModel, sentences: string[], servingIndex = false) {
  const rand = rng(n * 31 + edition.charCodeAt(0));
  const chunks = Array.from({ length: n }, (_, i) => ({
    id: `${edition}-${i}`,
    text: `${sentences[Math.floor(rand() * sentences.length)]} ${sentences[Math.floor(rand() * sentences.length)]} ${sentences[Math.floor(rand() * sentences.length)]} (record ${i}, edition ${edition})`,
    metadata: { source: `${edition}/doc-${i % 50}.md`, chunk: i, edition },
  }));
  const t0 = performance.now();
  const r = await publishStoreVersion({ outDir, chunks, model, logger, version, activate: false, batchSize: 512, servingIndex });
  return { dir: r.dir, ms: Math.round(performance.now() - t0) };
}

/**
 * The versions a swap bench publishes into a store folder, as a publisher does: a built version
 * copied in under the next name (`swap-001`, ...), then CURRENT pointed at it; the oldest beyond
 * `keep` deleted when the bench says (prune), the newest always kept.
 */
export class BenchVersions {
  /** Versions copied in so far (the next name's number). */
  count = 0;
  private readonly kept: string[];

  constructor(
    private readonly storeDir: string,
    private readonly keep: number,
    first: string,
  ) {
    this.kept = [first];
  }

  /** Copy a built version in under the next name; `from` may pick the source by that number. Its name. */
  async copyIn(from: string | ((n: number) => string), prefix = 'swap'): Promise<string> {
    const n = ++this.count;
    const version = `${prefix}-${String(n).padStart(3, '0')}`;
    await cp(typeof from === 'string' ? from : from(n), join(this.storeDir, version), { recursive: true });
    this.kept.push(version);
    return version;
  }

  /** Point CURRENT at a version copied in: the time the write finished. */
  async point(version: string): Promise<number> {
    await pointCurrent(this.storeDir, version);
    return Date.now();
  }

  /** Delete the oldest versions beyond `keep`. */
  async prune(): Promise<void> {
    while (this.kept.length > this.keep) await rm(join(this.storeDir, this.kept.shift()!), { recursive: true, force: true });
  }
}

/** Point CURRENT at a version, by rename. */
export async function pointCurrent(storeDir: string, name: string) {
  await writeFile(join(storeDir, 'CURRENT.tmp'), `${name}\n`);
  await rename(join(storeDir, 'CURRENT.tmp'), join(storeDir, 'CURRENT'));
}

/**
 * Environment every bench gives the service it starts: two malloc arenas, as `npm start` and the
 * Docker image run it (the bench's own MALLOC_ARENA_MAX wins).
 */
export const SERVICE_BASE_ENV: Record<string, string> = { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2' };

/**
 * The real service as a process on a free port, over work/models and storeDir. Audit log off: a
 * bench may run several services at once, and one audit folder takes one instance. SERVICE_BASE_ENV
 * first; an `env` entry wins.
 */
export async function startService(work: string, storeDir: string, env: Record<string, string> = {}, timeoutMs = 600_000, nice = 0) {
  const port = await freePort();
  const proc = await startNode(
    join(ROOT, 'dist', 'src', 'main.js'),
    [],
    { ...SERVICE_BASE_ENV, PORT: String(port), LOG_LEVEL: 'info', MODELS_DIR: join(work, 'models'), VECTORSTORE_DIR: storeDir, RUNTIME_DIR: join(work, `runtime-${port}`), MAX_CONCURRENT: '10000', AUDIT_LOG_DIR: 'off', WATCH: 'true', ...env },
    /"msg":"listening"/,
    timeoutMs,
    nice,
  );
  return { ...proc, url: `http://127.0.0.1:${port}` };
}

/** The default model copied into work/models (what the service under test loads) and the sample corpus's sentences (what synthetic stores are made of). */
export async function benchModelAndSentences(work: string): Promise<{ modelDir: string; model: EmbeddingModel; sentences: string[] }> {
  await mkdir(join(work, 'models'), { recursive: true });
  const modelDir = join(work, 'models', 'glove-sif-100d');
  await cp(join(ROOT, 'models', 'glove-sif-100d'), modelDir, { recursive: true });
  const model = await loadEmbeddingModel({ dir: modelDir });
  const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
  return { modelDir, model, sentences: documents.flatMap((d) => splitSentences(d.pageContent)) };
}

/** The service's max event-loop delay (ms) since the previous scrape (it resets its histogram on each scrape). */
export async function loopDelayMaxMs(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /rag_event_loop_delay_seconds\{quantile="max"\} ([0-9.e+-]+)/.exec(text);
  return m ? Math.round(Number(m[1]) * 1000 * 10) / 10 : NaN;
}
