/**
 * Worker thread that reads a store out of a running Chroma server and holds its keyword index,
 * so neither the JSON of the pages nor the MiniSearch build or load ever runs on the event loop
 * that serves requests. Protocol: see index-loader.ts (the only user).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toRagError } from '../errors.js';
import { ChromaStore } from './chroma-store.js';
import { KeywordIndex } from './keyword-index.js';
import { inverseNorms } from './vector-scan.js';

export interface IndexWorkerData {
  url: string;
  collection: string;
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
  | { type: 'failed'; code: string; message: string };

export type IndexWorkerRequest = { type: 'search'; id: number; query: string; limit: number };

const port = parentPort!;
const data = workerData as IndexWorkerData;

/** A chunk's keyword document: its text, and its title from metadata when it has one. */
function keywordDoc(id: string, text: string, metadata: Record<string, unknown> | null): { id: string; text: string; title?: string } {
  const title = metadata?.title;
  return typeof title === 'string' ? { id, text, title } : { id, text };
}

async function load(): Promise<KeywordIndex> {
  const shipped = data.keywordDir ? KeywordIndex.load(data.keywordDir) : Promise.resolve(null);
  shipped.catch(() => undefined);
  const store = await ChromaStore.open({ url: data.url, collection: data.collection });
  const vectors = data.withVectors ? new Float32Array(data.expectCount * data.expectDimension) : null;
  const docs: Array<{ id: string; text: string; title?: string }> = [];
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
    }
    page.ids.forEach((id, i) => docs.push(keywordDoc(id, documents[i]!, page.metadatas[i] as Record<string, unknown> | null)));
    row += page.ids.length;
  }
  if (row !== data.expectCount) throw new Error(`read ${row} records, the collection counted ${data.expectCount}`);
  if (vectors) {
    const invNorms = inverseNorms(vectors, row, data.expectDimension);
    port.postMessage({ type: 'vectors', data: vectors, invNorms, count: row, dimension: data.expectDimension } satisfies IndexWorkerMessage, [vectors.buffer as ArrayBuffer, invNorms.buffer as ArrayBuffer]);
  }
  return (await shipped) ?? KeywordIndex.build(docs, 'built');
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
  },
  (err: unknown) => {
    const e = toRagError(err, 'RAG_STORE_INDEX_LOAD_FAILED');
    port.postMessage({ type: 'failed', code: e.code, message: e.message } satisfies IndexWorkerMessage);
  },
);
