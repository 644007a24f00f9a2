/**
 * Build thread of a generation's index: reads a store out of a running Chroma server (or a serving
 * index cache entry), sends the texts and metadata to the event loop in pages and the vectors as
 * one transferred Float32Array, and makes the keyword index (loads the shipped one or builds one),
 * which it hands as text to the generation's keyword worker (keyword-worker.ts) over their own
 * channel. It lowers its own priority first (thread-nice.ts): a swap's build work yields CPU to
 * the threads serving requests. It exits after the build (and the cache write). Protocol: see
 * index-loader.ts (the only user).
 */
import { readFile } from 'node:fs/promises';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { RagError, toRagError } from '../errors.js';
import { decodeIndexCache, IndexCacheInvalid, writeIndexCache, type CachedIndex, type IndexCacheKey } from './index-cache.js';
import { KEYWORD_INDEX_FILE, KeywordIndex } from './keyword-index.js';
import type { KeywordHandOff, KeywordVerdict } from './keyword-worker.js';
import { niceCurrentThread } from './thread-nice.js';
import { normalizeRows, packRows } from './vector-scan.js';

/** Where to read the records from, and what the collection was counted to hold. */
export interface ReadTarget {
  url: string;
  collection: string;
  count: number;
  dimension: number;
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
  /** Pages requested from Chroma ahead of the one being handled (ChromaStore.allRecords). */
  pagesInFlight: number;
  /** The keyword worker's channel: the index goes there, not through the event loop. */
  keywordPort: MessagePort;
  /** Niceness of this thread during the build (0: leave it). */
  nice: number;
}

export type IndexWorkerMessage =
  | { type: 'page'; ids: string[]; documents: string[]; metadatas: Array<Record<string, unknown> | null> }
  /** `norms` set (cosine stores): the rows were scaled to unit length and these are their lengths. */
  | { type: 'vectors'; data: Float32Array; norms: Float32Array | null; count: number; dimension: number }
  | { type: 'paged' }
  | { type: 'built'; nice: number | null }
  | { type: 'cached'; ok: boolean; ms: number; file?: string; bytes?: number; reason?: string }
  | { type: 'loaded-from-cache'; version: string; collection: string; space: 'cosine' | 'l2' | 'ip'; count: number; dimension: number }
  | { type: 'failed'; code: string; message: string };

/**
 * From the event loop: `ack` after each page it has taken (one page in flight, so the event loop
 * never has to take several pages in one task); `persist` once the keyword worker has loaded the
 * index: write the cache entry now.
 */
export type IndexWorkerRequest =
  | { type: 'ack' }
  | { type: 'persist'; keyword: { origin: 'store' | 'built'; size: number } }
  | ({ type: 'read' } & ReadTarget);

/** Records per page message: one page is ~1 ms of structured-clone work for the event loop. */
export const MESSAGE_PAGE = 250;

const port = parentPort!;
const data = workerData as IndexWorkerData;
const nice = data.nice ? niceCurrentThread(data.nice) : null;

/** Pages for the event loop, sent one at a time: the next goes when the previous is acknowledged. */
const outbox: IndexWorkerMessage[] = [];
let inFlight = false;
let drained: (() => void) | null = null;
let onPersist: ((req: Extract<IndexWorkerRequest, { type: 'persist' }>) => void) | null = null;
function pump(): void {
  const next = outbox.shift();
  if (!next) {
    drained?.();
    drained = null;
    return;
  }
  inFlight = true;
  port.postMessage(next);
}
/** The read target: from workerData, or the event loop's `read` request once its Chroma server is up. */
let targetKnown: ((t: ReadTarget) => void) | null = null;
const target: Promise<ReadTarget> = data.target ? Promise.resolve(data.target) : new Promise((resolve) => (targetKnown = resolve));
port.on('message', (req: IndexWorkerRequest) => {
  if (req.type === 'read') {
    const { type: _t, ...t } = req;
    targetKnown?.(t);
    targetKnown = null;
  } else if (req.type === 'ack') {
    inFlight = false;
    pump();
  } else if (req.type === 'persist') onPersist?.(req);
});
/** Queue texts and metadata for the event loop in pages of MESSAGE_PAGE records. */
function sendPage(ids: string[], documents: string[], metadatas: Array<Record<string, unknown> | null>): void {
  for (let i = 0; i < ids.length; i += MESSAGE_PAGE) {
    outbox.push({ type: 'page', ids: ids.slice(i, i + MESSAGE_PAGE), documents: documents.slice(i, i + MESSAGE_PAGE), metadatas: metadatas.slice(i, i + MESSAGE_PAGE) });
  }
  if (!inFlight) pump();
}
/** Resolves once every queued page has been acknowledged. */
function allPagesTaken(): Promise<void> {
  if (!inFlight && outbox.length === 0) return Promise.resolve();
  return new Promise((resolve) => (drained = resolve));
}

/** A chunk's keyword document: its text, and its title from metadata when it has one. */
function keywordDoc(id: string, text: string, metadata: Record<string, unknown> | null): { id: string; text: string; title?: string } {
  const title = metadata?.title;
  return typeof title === 'string' ? { id, text, title } : { id, text };
}

/** What the worker read, kept until it is written to the serving index cache (only with `persist`). */
let toPersist: Omit<CachedIndex, 'keywordText' | 'keyword'> | null = null;

/** The keyword index as text for the keyword worker, with what it must hold. */
type KeywordOut = Omit<KeywordHandOff, 'type' | 'canFallBack'>;

/** Hand the keyword index to the keyword worker (see KeywordHandOff). */
function handOff(out: KeywordOut, canFallBack: boolean): void {
  data.keywordPort.postMessage({ type: 'keyword', ...out, canFallBack } satisfies KeywordHandOff);
}

/** The keyword worker's answer to a shipped index: loaded, or in the older format (build one). */
function keywordVerdict(): Promise<KeywordVerdict['type']> {
  return new Promise((resolve) => data.keywordPort.once('message', (m: KeywordVerdict) => resolve(m.type)));
}

async function load(): Promise<KeywordOut> {
  if (data.cache) return loadCached(data.cache.file, data.cache.key, data.cache.count);
  // The shipped keyword index is loaded by the keyword worker while the records are paged: one
  // that does not load there is RAG_STORE_KEYWORD_INDEX_CORRUPT, one of the older format `need-build`.
  const shipped: KeywordOut | null = data.keywordDir ? await KeywordIndex.readShipped(data.keywordDir).then((text) => (text === null ? null : { text, origin: 'store' as const, expectSize: null, invalidCode: 'RAG_STORE_KEYWORD_INDEX_CORRUPT' as const, invalidPrefix: `${KEYWORD_INDEX_FILE} is corrupt` })) : null;
  const verdict = shipped ? keywordVerdict() : null;
  if (shipped) handOff(shipped, true);
  // Imported here: a start from the cache never loads the chromadb client in this thread.
  const { ChromaStore } = await import('./chroma-store.js');
  // fetch (undici) compiles on its first use, ~100 ms in a new thread: done while the server starts.
  if (!data.target) await fetch('data:,').then((r) => r.arrayBuffer()).catch(() => undefined);
  const { url, collection, count: expectCount, dimension } = await target;
  const store = await ChromaStore.open({ url, collection });
  const vectors = data.withVectors ? new Float32Array(expectCount * dimension) : null;
  const docs: Array<{ id: string; text: string; title?: string }> = [];
  const persist = data.persist && vectors ? { ids: [] as string[], documents: [] as string[], metadatas: [] as CachedIndex['metadatas'] } : null;
  let row = 0;
  for await (const page of store.allRecords(data.pageSize, data.withVectors, { inFlight: data.pagesInFlight, total: expectCount })) {
    if (row + page.ids.length > expectCount) throw new Error(`the collection holds more than the ${expectCount} records it counted`);
    const documents = page.documents.map((d) => d ?? '');
    if (vectors) {
      packRows(vectors, page.ids, page.embeddings ?? [], row, dimension);
      sendPage(page.ids, documents, page.metadatas as Array<Record<string, unknown> | null>);
      if (persist) {
        persist.ids.push(...page.ids);
        persist.documents.push(...documents);
        // As the main thread stores them (index-loader.ts: a missing metadata is {}).
        persist.metadatas.push(...page.metadatas.map((m) => (m ?? {}) as CachedIndex['metadatas'][number]));
      }
    }
    page.ids.forEach((id, i) => docs.push(keywordDoc(id, documents[i]!, page.metadatas[i] as Record<string, unknown> | null)));
    row += page.ids.length;
  }
  if (row !== expectCount) throw new Error(`read ${row} records, the collection counted ${expectCount}`);
  // Chroma is no longer needed: its child can stop while the keyword index is made.
  port.postMessage({ type: 'paged' } satisfies IndexWorkerMessage);
  if (vectors) {
    // The cache gets its own copy: the array itself is transferred to the main thread.
    if (persist) toPersist = { ...persist, version: data.persist!.version, collection: store.name, space: store.space, count: row, dimension, vectors: vectors.slice() };
    sendVectors(vectors, row, dimension, store.space);
  }
  if (shipped && (await verdict) === 'loaded') return shipped;
  const built: KeywordOut = { text: KeywordIndex.build(docs, 'built').serialize(), origin: 'built', expectSize: docs.length, invalidCode: 'RAG_STORE_INDEX_LOAD_FAILED', invalidPrefix: 'the built keyword index does not load' };
  handOff(built, false);
  return built;
}

/** The vector matrix to the main thread (transferred): a cosine store's rows as unit vectors, scaled here (vector-scan.ts). */
function sendVectors(vectors: Float32Array, count: number, dimension: number, space: 'cosine' | 'l2' | 'ip'): void {
  const norms = space === 'cosine' ? normalizeRows(vectors, count, dimension) : null;
  const transfer = [vectors.buffer as ArrayBuffer, ...(norms ? [norms.buffer as ArrayBuffer] : [])];
  port.postMessage({ type: 'vectors', data: vectors, norms, count, dimension } satisfies IndexWorkerMessage, transfer);
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
  const out: KeywordOut = { text: index.keywordText, origin: index.keyword.origin, expectSize: index.keyword.size, invalidCode: 'RAG_STORE_INDEX_CACHE_INVALID', invalidPrefix: 'its keyword index does not load' };
  handOff(out, false);
  sendPage(index.ids, index.documents, index.metadatas);
  sendVectors(index.vectors, index.count, index.dimension, index.space);
  port.postMessage({ type: 'loaded-from-cache', version: index.version, collection: index.collection, space: index.space, count: index.count, dimension: index.dimension } satisfies IndexWorkerMessage);
  return out;
}

/** Write what was read to the serving index cache (after the generation is ready: serving never waits for it). */
async function persistLoaded(keyword: { origin: 'store' | 'built'; size: number }, keywordText: string): Promise<void> {
  const p = data.persist;
  const loaded = toPersist;
  toPersist = null;
  if (!p || !loaded) return;
  const t0 = performance.now();
  try {
    const { file, bytes } = await writeIndexCache(p.runtimeDir, p.key, { ...loaded, keyword, keywordText });
    port.postMessage({ type: 'cached', ok: true, ms: Math.round(performance.now() - t0), file, bytes } satisfies IndexWorkerMessage);
  } catch (err) {
    port.postMessage({ type: 'cached', ok: false, ms: Math.round(performance.now() - t0), reason: `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim().slice(0, 300) } satisfies IndexWorkerMessage);
  }
}

load().then(
  async (out) => {
    await allPagesTaken();
    // Told by the event loop once the keyword worker has loaded the index; then this thread ends.
    // Without a listener the port no longer keeps this thread alive: it ends once idle.
    const done = () => {
      port.removeAllListeners('message');
      port.unref();
    };
    if (toPersist) onPersist = (req) => void persistLoaded(req.keyword, out.text).finally(done);
    port.postMessage({ type: 'built', nice } satisfies IndexWorkerMessage);
    if (!toPersist) done();
  },
  (err: unknown) => {
    const e = toRagError(err, 'RAG_STORE_INDEX_LOAD_FAILED');
    port.postMessage({ type: 'failed', code: e.code, message: e.message } satisfies IndexWorkerMessage);
  },
);
