/**
 * Worker thread that answers one generation's keyword searches, at normal priority. It gets its
 * index as text from the build thread (index-worker.ts, niced) over its own MessageChannel, so
 * neither the index nor its parse ever crosses the event loop that serves requests. Protocol: see
 * index-loader.ts (the only user).
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { KeywordIndex } from './keyword-index.js';

export interface KeywordWorkerData {
  /** The build thread's end of the channel: one `keyword` message arrives on it. */
  port: MessagePort;
}

/** From the build thread: the index as KeywordIndex.serialize() text, and what it must hold. */
export interface KeywordHandOff {
  type: 'keyword';
  text: string;
  origin: 'store' | 'built';
  /** The document count it must have (a cache entry says so), or null. */
  expectSize: number | null;
  /** The error code and message start when it does not load (a corrupt shipped index, a bad cache entry). */
  invalidCode: 'RAG_STORE_KEYWORD_INDEX_CORRUPT' | 'RAG_STORE_INDEX_CACHE_INVALID' | 'RAG_STORE_INDEX_LOAD_FAILED';
  invalidPrefix: string;
  /** A shipped index: one in the older format is answered `need-build` (a built one follows), not an error. */
  canFallBack: boolean;
}

/** To the build thread, after a hand-off with canFallBack. */
export type KeywordVerdict = { type: 'loaded' } | { type: 'need-build' };

export type KeywordWorkerMessage =
  | { type: 'ready'; keyword: { origin: 'store' | 'built'; size: number } }
  | { type: 'hits'; id: number; hits: Array<{ id: string; score: number }> }
  | { type: 'failed'; code: string; message: string };

export type KeywordWorkerRequest = { type: 'search'; id: number; query: string; limit: number };

const parent = parentPort!;
const { port } = workerData as KeywordWorkerData;

port.on('message', (m: KeywordHandOff) => {
  let index: KeywordIndex | null;
  try {
    index = KeywordIndex.parse(m.text, m.origin);
    if (!index && m.canFallBack) {
      port.postMessage({ type: 'need-build' } satisfies KeywordVerdict);
      return;
    }
    if (!index) throw new Error('it is in an older format');
    if (m.expectSize !== null && index.size !== m.expectSize) throw new Error(`it holds ${index.size} documents, expected ${m.expectSize}`);
  } catch (err) {
    parent.postMessage({ type: 'failed', code: m.invalidCode, message: `${m.invalidPrefix}: ${(err as Error).message.slice(0, 200)}` } satisfies KeywordWorkerMessage);
    return;
  }
  const keyword = index;
  if (m.canFallBack) port.postMessage({ type: 'loaded' } satisfies KeywordVerdict);
  // Nothing more comes from the build thread; the channel no longer keeps this thread alive.
  port.removeAllListeners('message');
  port.unref();
  parent.on('message', (req: KeywordWorkerRequest) => {
    if (req.type !== 'search') return;
    let hits: Array<{ id: string; score: number }> = [];
    try {
      hits = keyword.search(req.query, req.limit);
    } catch {
      hits = [];
    }
    parent.postMessage({ type: 'hits', id: req.id, hits } satisfies KeywordWorkerMessage);
  });
  parent.postMessage({ type: 'ready', keyword: { origin: keyword.origin, size: keyword.size } } satisfies KeywordWorkerMessage);
});
