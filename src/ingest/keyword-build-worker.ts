/**
 * The publisher's keyword-index thread (keyword-build.ts is its only user): builds and serialises
 * a version's keyword index (MiniSearch: ~0.4 s of CPU at 3,000 chunks) off the event loop of the
 * process that publishes, which for a document change from the console is the service itself.
 * Born niced (niced-thread.ts). One job, one answer, then the thread is ended by its owner.
 */
import { workerData } from 'node:worker_threads';
import { threadPort } from '../niced-thread.js';
import { KeywordIndex } from '../store/keyword-index.js';
import type { KeywordAnalysis } from '../store/keyword-analysis.js';
import { keywordDocs } from './keyword-docs.js';

export interface KeywordBuildRequest {
  chunks: Array<{ id: string; text: string; metadata: Record<string, unknown> }>;
  analysis: KeywordAnalysis | null;
}

export type KeywordBuildReply = { ok: true; text: string; size: number } | { ok: false; message: string };

const port = threadPort(workerData);
// `on`: with `once` the thread ended (exit code 0) before the job arrived.
port.on('message', (m: KeywordBuildRequest) => {
  try {
    const keyword = KeywordIndex.build(keywordDocs(m.chunks), 'built', m.analysis ?? undefined);
    port.postMessage({ ok: true, text: keyword.serialize(), size: keyword.size } satisfies KeywordBuildReply);
  } catch (err) {
    port.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) } satisfies KeywordBuildReply);
  }
});
