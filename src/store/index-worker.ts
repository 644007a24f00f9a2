/**
 * Worker thread that reads a store out of a running Chroma server and holds its keyword index,
 * so neither the JSON of the pages nor the MiniSearch build or load ever runs on the event loop
 * that serves requests. Protocol: see index-loader.ts (the only user).
 */
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { RagError, toRagError } from '../errors.js';
import { decodeIndexCache, IndexCacheInvalid, writeIndexCache, type CachedIndex, type IndexCacheKey } from './index-cache.js';
import { KeywordIndex } from './keyword-index.js';
import { inverseNorms } from './vector-scan.js';

export interface IndexWorkerData {
  /** Read from this Chroma server (unused when `cache` is given). */
  url: string;
  collection: string;
  /** Read a serving index cache entry instead of Chroma (index-cache.ts); a bad entry fails with RAG_STORE_INDEX_CACHE_INVALID. */
  cache?: { file: string; key: IndexCacheKey } | undefined;
  /** After a load from Chroma (with vectors), write it to the serving index cache, then report `cached`. */
  persist?: { runtimeDir: string; key: IndexCacheKey; version: string } | undefined;
  /** Read embeddings, documents and metadata for an in-process index (else documents only, for the keyword index). */
  withVectors: boolean;
  /** Folder holding a shipped keyword-index.json (the snapshot), or null. */
  keywordDir: string | null;
  pageSize: number;
  expectCount: number;
  expectDimension: number;
}

export type IndexWorkerMessage =
  | { type: 'page'; ids: string[]; documents: string[]; metadatas: Array<Record<string, unknown> | null> }
  | { type: 'vectors'; data: Float32Array; invNorms: Float32Array; count: number; dimension: number }
  | { type: 'ready'; keyword: { origin: 'store' | 'built'; size: number } }
  | { type: 'hits'; id: number; hits: Array<{ id: string; score: number }> }
  | { type: 'cached'; ok: boolean; ms: number; file?: string; bytes?: number; reason?: string }
  | { type: 'loaded-from-cache'; version: string; collection: string; space: 'cosine' | 'l2' | 'ip'; count: number; dimension: number }
  | { type: 'failed'; code: string; message: string };

export type IndexWorkerRequest = { type: 'search'; id: number; query: string; limit: number };

const port = parentPort!;
const data = workerData as IndexWorkerData;

/** A chunk's keyword document: its text, and its title from metadata when it has one. */
function keywordDoc(id: string, text: string, metadata: Record<string, unknown> | null): { id: string; text: string; title?: string } {
  const title = metadata?.title;
  return typeof title === 'string' ? { id, text, title } : { id, text };
}

/** What the worker read, kept until it is written to the serving index cache (only with `persist`). */
let toPersist: Omit<CachedIndex, 'keywordText' | 'keyword'> | null = null;

async function load(): Promise<KeywordIndex> {
  if (data.cache) return loadCached(data.cache.file, data.cache.key);
  const shipped = data.keywordDir ? KeywordIndex.load(data.keywordDir) : Promise.resolve(null);
  shipped.catch(() => undefined);
  // Imported here: a start from the cache never loads the chromadb client in this thread.
  const { ChromaStore } = await import('./chroma-store.js');
  const store = await ChromaStore.open({ url: data.url, collection: data.collection });
  const vectors = data.withVectors ? new Float32Array(data.expectCount * data.expectDimension) : null;
  const docs: Array<{ id: string; text: string; title?: string }> = [];
  const persist = data.persist && vectors ? { ids: [] as string[], documents: [] as string[], metadatas: [] as CachedIndex['metadatas'] } : null;
  let row = 0;
  for await (const page of store.allRecords(data.pageSize, data.withVectors)) {
    if (row + page.ids.length > data.expectCount) throw new Error(`the collection holds more than the ${data.expectCount} records it counted`);
    const documents = page.documents.map((d) => d ?? '');
    if (vectors) {
      page.embeddings!.forEach((e, i) => {
        if (!e || e.length !== data.expectDimension) throw new Error(`record ${page.ids[i]} has a ${e?.length ?? 0}-d vector, expected ${data.expectDimension}`);
        vectors.set(e, (row + i) * data.expectDimension);
      });
      port.postMessage({ type: 'page', ids: page.ids, documents, metadatas: page.metadatas as Array<Record<string, unknown> | null> } satisfies IndexWorkerMessage);
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
  if (row !== data.expectCount) throw new Error(`read ${row} records, the collection counted ${data.expectCount}`);
  if (vectors) {
    // The cache gets its own copy: the array itself is transferred to the main thread.
    if (persist) toPersist = { ...persist, version: data.persist!.version, collection: store.name, space: store.space, count: row, dimension: data.expectDimension, vectors: vectors.slice() };
    const invNorms = inverseNorms(vectors, row, data.expectDimension);
    port.postMessage({ type: 'vectors', data: vectors, invNorms, count: row, dimension: data.expectDimension } satisfies IndexWorkerMessage, [vectors.buffer as ArrayBuffer, invNorms.buffer as ArrayBuffer]);
  }
  return (await shipped) ?? KeywordIndex.build(docs, 'built');
}

/** A serving index cache entry, checked (index-cache.ts), delivered through the same messages as a load from Chroma. */
async function loadCached(file: string, key: IndexCacheKey): Promise<KeywordIndex> {
  let index: CachedIndex;
  let keyword: KeywordIndex | null;
  try {
    index = decodeIndexCache(await readFile(file), key);
    if (index.count !== data.expectCount && data.expectCount > 0) throw new IndexCacheInvalid(`it holds ${index.count} records, expected ${data.expectCount}`);
    try {
      keyword = KeywordIndex.parse(index.keywordText, index.keyword.origin);
    } catch (err) {
      throw new IndexCacheInvalid(`its keyword index does not load: ${(err as Error).message.slice(0, 200)}`);
    }
    if (!keyword || keyword.size !== index.keyword.size) throw new IndexCacheInvalid(`its keyword index holds ${keyword?.size ?? 'no'} documents, expected ${index.keyword.size}`);
  } catch (err) {
    const why = err instanceof IndexCacheInvalid ? err.message : `it cannot be read: ${(err as Error).message.slice(0, 200)}`;
    throw new RagError('RAG_STORE_INDEX_CACHE_INVALID', why, { cause: err });
  }
  for (let start = 0; start < index.count; start += data.pageSize) {
    const end = Math.min(index.count, start + data.pageSize);
    port.postMessage({ type: 'page', ids: index.ids.slice(start, end), documents: index.documents.slice(start, end), metadatas: index.metadatas.slice(start, end) } satisfies IndexWorkerMessage);
  }
  const invNorms = inverseNorms(index.vectors, index.count, index.dimension);
  port.postMessage({ type: 'vectors', data: index.vectors, invNorms, count: index.count, dimension: index.dimension } satisfies IndexWorkerMessage, [index.vectors.buffer as ArrayBuffer, invNorms.buffer as ArrayBuffer]);
  port.postMessage({ type: 'loaded-from-cache', version: index.version, collection: index.collection, space: index.space, count: index.count, dimension: index.dimension } satisfies IndexWorkerMessage);
  return keyword;
}

/** Write what was read to the serving index cache (after `ready`: serving never waits for it). */
async function persistLoaded(keyword: KeywordIndex): Promise<void> {
  const p = data.persist;
  const loaded = toPersist;
  toPersist = null;
  if (!p || !loaded) return;
  const t0 = performance.now();
  try {
    const { file, bytes } = await writeIndexCache(p.runtimeDir, p.key, { ...loaded, keyword: { origin: keyword.origin, size: keyword.size }, keywordText: keyword.serialize() });
    port.postMessage({ type: 'cached', ok: true, ms: Math.round(performance.now() - t0), file, bytes } satisfies IndexWorkerMessage);
  } catch (err) {
    port.postMessage({ type: 'cached', ok: false, ms: Math.round(performance.now() - t0), reason: `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim().slice(0, 300) } satisfies IndexWorkerMessage);
  }
}

load().then(
  (keyword) => {
    port.on('message', (req: IndexWorkerRequest) => {
      if (req.type !== 'search') return;
      let hits: Array<{ id: string; score: number }> = [];
      try {
        hits = keyword.search(req.query, req.limit);
      } catch {
        hits = [];
      }
      port.postMessage({ type: 'hits', id: req.id, hits } satisfies IndexWorkerMessage);
    });
    port.postMessage({ type: 'ready', keyword: { origin: keyword.origin, size: keyword.size } } satisfies IndexWorkerMessage);
    void persistLoaded(keyword);
  },
  (err: unknown) => {
    const e = toRagError(err, 'RAG_STORE_INDEX_LOAD_FAILED');
    port.postMessage({ type: 'failed', code: e.code, message: e.message } satisfies IndexWorkerMessage);
  },
);
