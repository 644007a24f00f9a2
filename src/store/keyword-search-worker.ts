/**
 * The search thread of a big keyword index (KeywordSearcher, index-loader.ts): the compiled arrays
 * arrive in shared memory (no copy) and every query is answered here, so a search over millions of
 * postings never blocks the event loop. One message in, one out, in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KeywordPostings, type KeywordPostingsData } from './keyword-postings.js';

export type KeywordSearchRequest = { id: number; query: string; limit: number; allowed: Uint8Array | null };
export type KeywordSearchReply = { id: number; hits: Array<{ id: string; score: number }> } | { id: number; error: string };

const port = parentPort!;
const postings = new KeywordPostings((workerData as { data: KeywordPostingsData }).data);
port.on('message', (m: KeywordSearchRequest) => {
  try {
    const allowed = m.allowed;
    const hits = postings.search(m.query, m.limit, allowed ? (doc) => allowed[doc] === 1 : undefined);
    port.postMessage({ id: m.id, hits } satisfies KeywordSearchReply);
  } catch (err) {
    port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) } satisfies KeywordSearchReply);
  }
});
