/**
 * Build thread of a generation's index: reads a store out of a running Chroma server (or a serving
 * index cache entry), sends ids, texts and metadata as columns to the event loop, the
 * vectors as one transferred Float32Array, and the keyword index compiled to typed arrays
 * (keyword-postings.ts: the shipped one, or one built from the texts), also transferred. It lowers
 * its own priority first (thread-nice.ts): a swap's build work yields CPU to the threads serving
 * requests. It runs one build (`job`) at a time and reports `idle` after it (and its cache write):
 * the event loop then ends it and keeps a fresh thread ready for the next build (`warm`), so a swap
 * does not pay a thread's start (Node, these imports, undici's first fetch: ~135 ms of CPU) nor run on
 * the last build's garbage. Protocol: see index-loader.ts (the only user).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { readFile } from 'node:fs/promises';
import { workerData } from 'node:worker_threads';
import { RagError, toRagError } from '../errors.js';
import { threadPort } from '../niced-thread.js';
import { decodeIndexCache, IndexCacheInvalid, writeIndexCache, type CachedIndex, type IndexCacheKey } from './index-cache.js';
import { KEYWORD_ANALYSIS, KEYWORD_INDEX_FILE, KeywordIndex } from './keyword-index.js';
import { copyPostings, PostingsBuilder, postingsBuffers, recordKeywordDoc, sharedPostings, type KeywordPostingsData } from './keyword-postings.js';
import { checkMetadataColumn, copyMetadataColumn, metadataBuffers, type MetadataColumnData } from './metadata-columns.js';
import { buildIdTable, checkTextColumn, columnBuffers, copyColumn, IdIndex, TextColumn, type TextColumnData } from './record-columns.js';
import { currentThreadNice, niceCurrentThread } from './thread-nice.js';
import type { CollectionRef } from './chroma-pages.js';
import type { DistanceSpace } from './chroma-store.js';
import { normalizeRows } from './vector-scan.js';
import { VectorRows, type WasmMemory } from './simd-kernel.js';
import { forgetOrigin } from './fetch-origins.js';

/** Where to read the records from, and what the collection was counted to hold. */
export interface ReadTarget {
  url: string;
  collection: string;
  count: number;
  dimension: number;
  /**
   * The collection as the event loop opened it (ChromaStore.refAt) and its space: the thread then
   * reads pages with no chromadb client and no fetch (chroma-pages.ts). Without them it opens the
   * collection itself first.
   */
  ref?: Omit<CollectionRef, 'url' | 'name'> & { space: DistanceSpace };
}

export interface IndexWorkerData {
  /**
   * Read from this Chroma server (unused when `cache` is given). Null: the thread was started
   * before its Chroma server was up (thread start, imports and the shipped keyword index overlap
   * the server's start); it reads once a `read` request names the target.
   */
  target: ReadTarget | null;
  /** Read a serving index cache entry instead of Chroma (index-cache.ts); a bad entry fails with RAG_STORE_INDEX_CACHE_INVALID. */
  cache?: { file: string; key: IndexCacheKey; count: number } | undefined;
  /** After a load from Chroma (with vectors), write it to the serving index cache once told to (`persist`), then report `cached`. */
  persist?: { runtimeDir: string; key: IndexCacheKey; version: string } | undefined;
  /** Read embeddings, documents and metadata for an in-process index (else documents only, for the keyword index). */
  withVectors: boolean;
  /** Folder holding a shipped keyword-index.json (the snapshot), or null. */
  keywordDir: string | null;
  pageSize: number;
  /** Pages requested from Chroma ahead of the one being handled (chroma-pages.ts readRecordPages). */
  pagesInFlight: number;
  /** A keyword index with at least this many postings is sent in shared memory, to be searched on a thread of its own. */
  keywordThreadMinPostings: number;
}

export type IndexWorkerMessage =
  /**
   * Ids, texts and metadata as columns (record-columns.ts, metadata-columns.ts: UTF-8 bytes and
   * typed arrays, every buffer transferred, so the event loop copies and deserialises no text),
   * the id table over them, and per keyword index document its row (-1: not in the collection).
   * Sent once, before `built`.
   */
  | { type: 'columns'; ids: TextColumnData; documents: TextColumnData; metadata: MetadataColumnData; idTable: Int32Array; docRow: Int32Array }
  /**
   * The rows: in the SIMD kernel's shared memory (`memory`, simd-kernel.ts VectorRows: shared, not
   * copied), else as `data` (transferred). `norms` set (cosine stores): the rows were scaled to unit
   * length and these are their lengths.
   */
  | { type: 'vectors'; data: Float32Array | null; memory: WasmMemory | null; norms: Float32Array | null; count: number; dimension: number }
  /** The keyword index, compiled (its buffers transferred). */
  | { type: 'keyword'; data: KeywordPostingsData }
  | { type: 'paged' }
  /** `persisting`: a cache entry is to be written (on `persist`), `idle` follows; else the job is over and the thread takes the next `job`. */
  | { type: 'built'; nice: number | null; bornNice: number | null; persisting: boolean }
  /** The cache entry of the job was written (or failed): the thread takes the next `job`. */
  | { type: 'idle' }
  | { type: 'cached'; ok: boolean; ms: number; file?: string; bytes?: number; reason?: string }
  | { type: 'loaded-from-cache'; version: string; collection: string; space: 'cosine' | 'l2' | 'ip'; count: number; dimension: number }
  | { type: 'failed'; code: string; message: string }
  /** After `collect`: the thread's heap before and after its full collection (bytes). */
  | { type: 'collected'; ms: number; heapBefore: number; heapAfter: number };

/**
 * From the event loop: `job` starts a build (only on a thread that is new or reported `idle`);
 * `read` where to read once its Chroma server is up; `persist` once the generation is built:
 * write the cache entry now; `collect` when the idle thread is kept for another build: collect its
 * garbage now (collectGarbage).
 */
export type IndexWorkerRequest = { type: 'job'; data: IndexWorkerData } | { type: 'persist' } | { type: 'collect' } | ({ type: 'read' } & ReadTarget);

/** The thread's own data: its niceness for every build it runs (0: leave it). */
export interface IndexThreadData {
  nice: number;
  /**
   * A thread started ahead of its build (index-loader.ts keeps one ready): load the Chroma client
   * and compile fetch now, at its low priority, instead of during the build.
   */
  warm?: boolean;
}

const port = threadPort(workerData);
const thread = workerData as IndexThreadData;
/** The niceness this thread was born with (niced-thread.ts: its creator's), before it set its own. */
const bornNice = currentThreadNice();
const nice = thread.nice ? niceCurrentThread(thread.nice) : null;
if (thread.warm) {
  // Its reading code compiled now, at its low priority, not during the build.
  void import('./chroma-pages.js').catch(() => undefined);
}

// The state of the job being run (one at a time; reset by startJob).
let data: IndexWorkerData;
let running = false;
let onPersist: (() => void) | null = null;
/** The read target: from the job, or the event loop's `read` request once its Chroma server is up. */
let targetKnown: ((t: ReadTarget) => void) | null = null;
let target: Promise<ReadTarget>;
port.on('message', (req: IndexWorkerRequest) => {
  if (req.type === 'job') startJob(req.data);
  else if (req.type === 'read') {
    const { type: _t, ...t } = req;
    targetKnown?.(t);
    targetKnown = null;
  } else if (req.type === 'persist') onPersist?.();
  else if (req.type === 'collect' && !running) {
    const collect = collectGarbage();
    if (!collect) return;
    const t0 = performance.now();
    const before = process.memoryUsage().heapUsed;
    collect();
    port.postMessage({ type: 'collected', ms: Math.round(performance.now() - t0), heapBefore: before, heapAfter: process.memoryUsage().heapUsed } satisfies IndexWorkerMessage);
  }
});

/**
 * A full collection of this thread's heap, or null where V8 refuses the flag. A thread kept for its
 * next build (BUILD_THREAD_MAX_BUILDS > 1) otherwise holds its last build's garbage (~40-60 MiB at
 * 10,000 chunks) until V8's memory reducer gets to it, which swaps every few seconds never leave it
 * time for: RSS after 100 swaps of 3,000 chunks 1.092x the first with 8 builds a thread, 1.010x with
 * this collection (~6-11 ms of this niced thread, the heap left at ~6 MiB; bench/results/swaps-2026-12-06-s17.md).
 * `--expose-gc` only adds `gc` to contexts made after it is set: the one made here, on the first
 * `collect` (never with the default of one build a thread, which is ended instead).
 * It is `gc({ type: 'major' })`, a plain full collection: `gc()` with no argument also reduces the
 * memory footprint, which throws away the thread's optimised code, so a kept thread recompiled its
 * hot loops every build as a fresh one does (session 23: a 10,000-chunk keyword index's compile,
 * third run in one thread, 161-201 ms of CPU after `gc()`, 67 ms after `gc({ type: 'major' })`,
 * heap 7.2 against 10.3 MiB after it; `/tmp/s23/reopt.mjs`).
 */
let collector: (() => void) | null | undefined;
function collectGarbage(): (() => void) | null {
  if (collector !== undefined) return collector;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    collector = typeof gc === 'function' ? () => void (gc as (options: { type: 'major' }) => unknown)({ type: 'major' }) : null;
  } catch {
    collector = null;
  }
  return collector;
}
/**
 * Ids, texts and metadata to the event loop as columns, with the id table and each keyword
 * document's row (computed and checked here, at low priority: the event loop builds no per-record
 * lookup of its own and checks only the columns' ends).
 */
function sendColumns(idData: TextColumnData, docData: TextColumnData, metaData: MetadataColumnData, keyword: KeywordPostingsData, checked = false): void {
  // Checked here, at low priority (the ids by their TextColumn), unless already `checked` (a serving
  // index's decoder checks every column): the event loop takes the columns with their ends checked only.
  const idColumn = new TextColumn(idData, { checked });
  const idTable = buildIdTable(idColumn);
  const index = new IdIndex(idColumn, idTable);
  if (!checked) {
    checkTextColumn(docData);
    checkMetadataColumn(metaData);
  }
  // Each keyword document's id, as the UTF-8 bytes the compiled index keeps, looked up without a string.
  const docRow = new Int32Array(keyword.idStart.length - 1);
  for (let d = 0; d < docRow.length; d++) docRow[d] = index.rowOfBytes(keyword.idBytes, keyword.idStart[d]!, keyword.idStart[d + 1]!);
  // Every buffer transferred: the event loop copies no text.
  port.postMessage({ type: 'columns', ids: idData, documents: docData, metadata: metaData, idTable, docRow } satisfies IndexWorkerMessage, [...columnBuffers(idData), ...columnBuffers(docData), ...metadataBuffers(metaData), idTable.buffer as ArrayBuffer, docRow.buffer as ArrayBuffer]);
}

/** What the worker read, kept until it is written to the serving index cache (only with `persist`): copies of what was sent. */
let toPersist: Omit<CachedIndex, 'keyword' | 'postings'> | null = null;

/** The keyword index as sent, and a copy of it kept for the serving index cache. */
interface KeywordOut {
  origin: 'store' | 'built';
  size: number;
  /** The compiled index to persist (null: not kept, nothing to persist). */
  postings: KeywordPostingsData | null;
}

/** A keyword index this big is sent as a shared copy for a search thread (its own arrays stay here), else its arrays are transferred. */
function searchedOnThread(compiled: KeywordPostingsData): boolean {
  return compiled.postDoc.length >= data.keywordThreadMinPostings;
}

/** The compiled keyword index to the main thread (transferred; a big one copied to shared memory first, for its search thread). */
function sendKeyword(compiled: KeywordPostingsData): void {
  const out = searchedOnThread(compiled) ? sharedPostings(compiled) : compiled;
  port.postMessage({ type: 'keyword', data: out } satisfies IndexWorkerMessage, postingsBuffers(out));
}

async function load(): Promise<KeywordOut> {
  if (data.cache) return loadCached(data.cache.file, data.cache.key, data.cache.count);
  // The shipped keyword index is compiled while the Chroma child starts and its pages are read: the
  // compile runs in slices between the pages as they arrive (Chroma's serving of the pages, not this
  // thread, is the slower side; a compile done first held the first page back by its whole length).
  // One that does not compile is RAG_STORE_KEYWORD_INDEX_CORRUPT (its checks of the text's form at
  // once, the rest when its compile ends); one of the older format is rebuilt from the texts below.
  const shippedText = data.keywordDir ? await KeywordIndex.readShipped(data.keywordDir) : null;
  const corrupt = (cause: unknown) => new RagError('RAG_STORE_KEYWORD_INDEX_CORRUPT', `${KEYWORD_INDEX_FILE} is corrupt: ${(cause as Error).message.slice(0, 200)}`, { cause });
  let shippedCompile: { compile: () => Promise<KeywordPostingsData> } | null;
  try {
    shippedCompile = shippedText === null ? null : KeywordIndex.compileTextInSlices(shippedText, 'store');
  } catch (cause) {
    throw corrupt(cause);
  }
  const compiling = shippedCompile?.compile().catch((cause: unknown) => Promise.reject(corrupt(cause))) ?? null;
  // Its failure is reported once the pages are read or when they fail first (Promise.all below), never unhandled.
  compiling?.catch(() => undefined);
  const { readAllRecords } = await import('./chroma-pages.js');
  const { url, collection, count: expectCount, dimension, ref: given } = await target;
  const { ref, space } = given ? { ref: { ...given, url, name: collection }, space: given.space } : await openHere(url, collection);
  // Without a usable shipped index, one is built from the texts as they are read (typed arrays, no
  // document kept: MiniSearch's object graph for 1M chunks did not fit this thread's heap).
  const builder = compiling ? null : new PostingsBuilder(KEYWORD_ANALYSIS);
  // An in-process index gets ids, texts and metadata as columns at the end (sendColumns), joined page by page.
  const [columns, shipped] = await Promise.all([
    readAllRecords(ref, expectCount, {
      dimension: data.withVectors ? dimension : null,
      kernelRows: true,
      pageSize: data.pageSize,
      inFlight: data.pagesInFlight,
      ...(builder ? { onPage: (page, documents) => page.ids.forEach((id, i) => builder.add(recordKeywordDoc(id, documents[i]!, page.metadatas[i] as Record<string, unknown> | null))) } : {}),
      // Chroma is no longer needed: its child can stop while the columns are joined and the keyword index made.
      onPaged: () => port.postMessage({ type: 'paged' } satisfies IndexWorkerMessage),
    }),
    compiling,
  ]);
  if (columns) {
    // The cache gets its own copies: the arrays themselves are transferred to the main thread.
    if (data.persist) toPersist = { ids: copyColumn(columns.ids), documents: copyColumn(columns.documents), metadata: copyMetadataColumn(columns.metadata), version: data.persist.version, collection: ref.name, space, count: columns.count, dimension, vectors: columns.vectors.slice() };
    sendVectors(columns.kernelRows ?? columns.vectors, columns.count, dimension, space);
  }
  const keyword = shipped ?? builder!.finish('built');
  if (columns) sendColumns(columns.ids, columns.documents, columns.metadata, keyword);
  // The cache entry keeps the compiled arrays (written once the generation serves, persistLoaded):
  // copied now when the ones sent detach (a shared copy leaves them here).
  const kept = toPersist ? (searchedOnThread(keyword) ? keyword : copyPostings(keyword)) : null;
  sendKeyword(keyword);
  return { origin: shipped ? 'store' : 'built', size: keyword.documentCount, postings: kept };
}

/**
 * A target without the event loop's collection ref (callers that only name the collection): the
 * collection is opened here with the chromadb client, whose fetch pool is closed after the job.
 */
async function openHere(url: string, collection: string): Promise<{ ref: CollectionRef; space: DistanceSpace }> {
  const { ChromaStore } = await import('./chroma-store.js');
  const store = await ChromaStore.open({ url, collection });
  return { ref: store.refAt(url), space: store.space };
}

/**
 * The vector matrix to the main thread: in the SIMD kernel's memory (shared), else transferred; a
 * cosine store's rows as unit vectors, scaled here (vector-scan.ts).
 */
function sendVectors(vectors: Float32Array | VectorRows, count: number, dimension: number, space: 'cosine' | 'l2' | 'ip'): void {
  const kernelRows = vectors instanceof VectorRows ? vectors : null;
  const rows = kernelRows?.rows ?? (vectors as Float32Array);
  const norms = space === 'cosine' ? normalizeRows(rows, count, dimension) : null;
  // The int8 codes of the first pass, made here, off the event loop, once the rows are final.
  kernelRows?.prepare();
  const transfer = [...(kernelRows ? [] : [rows.buffer as ArrayBuffer]), ...(norms ? [norms.buffer as ArrayBuffer] : [])];
  port.postMessage({ type: 'vectors', data: kernelRows ? null : rows, memory: kernelRows?.memory ?? null, norms, count, dimension } satisfies IndexWorkerMessage, transfer);
}

/** A serving index cache entry, checked (index-cache.ts), delivered through the same messages as a load from Chroma. */
/** `expectCount` 0: whatever the entry holds. */
async function loadCached(file: string, key: IndexCacheKey, expectCount: number): Promise<KeywordOut> {
  let index: CachedIndex;
  try {
    index = decodeIndexCache(await readFile(file), key);
    if (index.count !== expectCount && expectCount > 0) throw new IndexCacheInvalid(`it holds ${index.count} records, expected ${expectCount}`);
  } catch (err) {
    const why = err instanceof IndexCacheInvalid ? err.message : `it cannot be read: ${(err as Error).message.slice(0, 200)}`;
    throw new RagError('RAG_STORE_INDEX_CACHE_INVALID', why, { cause: err });
  }
  const keyword = index.postings;
  if (keyword.documentCount !== index.keyword.size) {
    throw new RagError('RAG_STORE_INDEX_CACHE_INVALID', `its keyword index holds ${keyword.documentCount} documents, expected ${index.keyword.size}`);
  }
  // The arrays come checked (decodeIndexCache); sendColumns builds the id table and each keyword document's row.
  sendColumns(index.ids, index.documents, index.metadata, keyword, true);
  sendKeyword(keyword);
  // Into the SIMD kernel's memory where it can serve them (a copy, here on the build thread).
  const kernelRows = VectorRows.allocate(index.count, index.dimension);
  kernelRows?.rows.set(index.vectors);
  sendVectors(kernelRows ?? index.vectors, index.count, index.dimension, index.space);
  port.postMessage({ type: 'loaded-from-cache', version: index.version, collection: index.collection, space: index.space, count: index.count, dimension: index.dimension } satisfies IndexWorkerMessage);
  return { origin: index.keyword.origin, size: index.keyword.size, postings: null };
}

/** Write what was read to the serving index cache (after the generation is ready: serving never waits for it). */
async function persistLoaded(out: KeywordOut): Promise<void> {
  const p = data.persist;
  const loaded = toPersist;
  toPersist = null;
  if (!p || !loaded || !out.postings) return;
  const keyword = { origin: out.origin, size: out.size };
  const t0 = performance.now();
  try {
    const { file, bytes } = await writeIndexCache(p.runtimeDir, p.key, { ...loaded, keyword, postings: out.postings });
    port.postMessage({ type: 'cached', ok: true, ms: Math.round(performance.now() - t0), file, bytes } satisfies IndexWorkerMessage);
  } catch (err) {
    port.postMessage({ type: 'cached', ok: false, ms: Math.round(performance.now() - t0), reason: `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim().slice(0, 300) } satisfies IndexWorkerMessage);
  }
}

/** Run one build; `idle` once it is over. A failed build leaves the thread to be ended by the event loop. */
function startJob(job: IndexWorkerData): void {
  if (running) {
    port.postMessage({ type: 'failed', code: 'RAG_STORE_INDEX_LOAD_FAILED', message: 'the build thread was given a job while it ran another' } satisfies IndexWorkerMessage);
    return;
  }
  running = true;
  data = job;
  onPersist = null;
  toPersist = null;
  targetKnown = null;
  target = job.target ? Promise.resolve(job.target) : new Promise((resolve) => (targetKnown = resolve));
  // The loader child is gone after this job: its fetch pool would stay in this thread for its later builds (fetch-origins.ts).
  const done = () => void target.then((t) => forgetOrigin(t.url)).catch(() => undefined);
  load().finally(done).then(
    async (out) => {
      // Told by the event loop once the generation is built; then this thread is idle.
      const persisting = toPersist !== null;
      if (persisting) {
        onPersist = () =>
          void persistLoaded(out).finally(() => {
            running = false;
            port.postMessage({ type: 'idle' } satisfies IndexWorkerMessage);
          });
      } else running = false;
      port.postMessage({ type: 'built', nice, bornNice, persisting } satisfies IndexWorkerMessage);
    },
    (err: unknown) => {
      const e = toRagError(err, 'RAG_STORE_INDEX_LOAD_FAILED');
      port.postMessage({ type: 'failed', code: e.code, message: e.message } satisfies IndexWorkerMessage);
    },
  );
}
