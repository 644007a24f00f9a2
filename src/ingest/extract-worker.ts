/**
 * Worker thread that takes the text out of one uploaded file (extract-text.ts), so parsing a PDF or
 * converting a large HTML page never runs on the service's event loop. Protocol: workerData
 * { name, ext, bytes } in, one message { ok, text, metadata } or { ok: false, code, message } out.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { toRagError } from '../errors.js';
import { extractText } from './extract-text.js';

export interface ExtractRequest {
  name: string;
  ext: string;
  bytes: Uint8Array;
}
export type ExtractReply = { ok: true; text: string; metadata: Record<string, string> } | { ok: false; code: string; message: string };

const { name, ext, bytes } = workerData as ExtractRequest;
extractText(name, ext, bytes).then(
  (doc) => parentPort!.postMessage({ ok: true, text: doc.pageContent, metadata: doc.metadata as Record<string, string> } satisfies ExtractReply),
  (err: unknown) => {
    const e = toRagError(err, 'RAG_DOCS_TYPE_MISMATCH');
    parentPort!.postMessage({ ok: false, code: e.code, message: e.message } satisfies ExtractReply);
  },
);
