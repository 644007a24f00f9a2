import { RagError } from '../errors.js';
import { startNicedThread } from '../niced-thread.js';
import type { KeywordAnalysis } from '../store/keyword-analysis.js';
import { workerScript } from '../worker-script.js';
import type { KeywordBuildReply, KeywordBuildRequest } from './keyword-build-worker.js';

/** The keyword-index thread's niceness: a document change from the console publishes inside the service, beside requests. */
export const KEYWORD_BUILD_NICE = 19;

/**
 * A version's keyword index (keyword-index.json's text and its document count), built from its
 * chunks on a thread of its own (keyword-build-worker.ts): the event loop of the publishing
 * process only copies the chunks' ids, texts and metadata to the thread and the text back. Built
 * on the event loop, 3,000 chunks held the service's loop for ~0.4 s during a console upload
 * (bench/results/swaps-2026-12-06-s20.md). The thread is started for the job and ended after it.
 */
export async function buildKeywordText(chunks: ReadonlyArray<{ id: string; text: string; metadata: Record<string, unknown> }>, analysis?: KeywordAnalysis): Promise<{ text: string; size: number }> {
  const thread = startNicedThread(workerScript(import.meta.url, 'keyword-build-worker', 'RAG_INGEST_FAILED'), {}, KEYWORD_BUILD_NICE);
  try {
    const reply = await new Promise<KeywordBuildReply>((resolve, reject) => {
      thread.once('message', resolve);
      thread.once('error', (err) => reject(new RagError('RAG_INGEST_FAILED', `the keyword index thread failed: ${err.message}`, { cause: err })));
      thread.once('exit', (code) => reject(new RagError('RAG_INGEST_FAILED', `the keyword index thread exited (code ${code}) before it answered`)));
      thread.postMessage({ chunks: chunks.map((c) => ({ id: c.id, text: c.text, metadata: c.metadata })), analysis: analysis ?? null } satisfies KeywordBuildRequest);
    });
    if (!reply.ok) throw new RagError('RAG_INGEST_FAILED', `building the keyword index failed: ${reply.message}`);
    return { text: reply.text, size: reply.size };
  } finally {
    await thread.terminate();
  }
}
