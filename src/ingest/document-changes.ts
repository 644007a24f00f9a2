import { access, mkdtemp, rm } from 'node:fs/promises';
import { constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Document } from '@langchain/core/documents';
import { RagError, type ErrorCode } from '../errors.js';
import type { ExtractReply, ExtractRequest } from './extract-worker.js';
import type { Generation } from '../reload/generation.js';
import type { Logger } from '../observability/logger.js';
import type { StoreHit } from '../store/chroma-store.js';
import { DEFAULT_COLLECTION, publishStoreVersion } from './publish.js';
import { parseAcceptance, type AcceptanceSpec } from '../store/acceptance.js';
import { readAcceptance } from '../store/store-version.js';
import { ACCEPTANCE_FILE } from '../store/layout.js';
import { DEFAULT_CHUNKING, splitDocuments, type Chunk } from './split-documents.js';

/**
 * Documents from the browser: one change (an upload or a delete) at a time becomes a new store
 * version through the ingest pipeline (load -> split -> embed -> publishStoreVersion), built from the
 * records of the version being served. Unchanged chunks keep their vectors (read back from the
 * served store) when the served model is the one the store was built with; otherwise every chunk
 * is embedded again. Uploaded bytes are never written to disk: the text is taken from memory.
 */

export { checkDocumentName, UPLOAD_TYPES } from './extract-text.js';

/** The compiled worker script (tests run the TypeScript sources, whose worker is the built one in dist/). */
function extractWorkerPath(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.endsWith('.ts') ? here.replace(/\/src\/ingest\/[^/]+\.ts$/, '/dist/src/ingest/extract-worker.js') : here.replace(/[^/]+\.js$/, 'extract-worker.js');
  if (!existsSync(js)) throw new RagError('RAG_INTERNAL', `the text extraction worker script is missing: ${js} (run npm run build)`);
  return js;
}

/**
 * The text of an uploaded file, taken in a worker thread (extract-text.ts) with a time and a heap
 * limit: a PDF that makes the parser spin or balloon is stopped and refused, and the event loop
 * that serves requests never parses it.
 */
export function extractTextIsolated(name: string, ext: string, bytes: Uint8Array, timeoutMs = 60_000): Promise<Document> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(extractWorkerPath(), { workerData: { name, ext, bytes } satisfies ExtractRequest, resourceLimits: { maxOldGenerationSizeMb: 512 } });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(new RagError('RAG_DOCS_TYPE_MISMATCH', `${name}: its text could not be read within ${timeoutMs / 1000} s`))), timeoutMs);
    worker.once('message', (m: ExtractReply) =>
      finish(() => {
        if (m.ok) {
          const doc = new Document({ pageContent: m.text });
          doc.metadata = m.metadata;
          resolve(doc);
        } else reject(new RagError(m.code as ErrorCode, m.message));
      }),
    );
    worker.once('error', (err) => finish(() => reject(new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} could not be read: ${err.message.slice(0, 200)}`, { cause: err }))));
    worker.once('exit', (code) => finish(() => reject(new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} could not be read (the extraction stopped, code ${code})`))));
  });
}

export interface DocumentEntry {
  source: string;
  title: string;
  type: string;
  chunks: number;
}

interface StoredChunk extends Chunk {
  embedding: number[];
}

async function readAll(gen: Generation): Promise<StoredChunk[]> {
  const backend = gen.store.store;
  if (!backend.exportRecords) throw new RagError('RAG_DOCS_UNAVAILABLE', 'the served store is a remote Chroma (CHROMA_URL): documents are managed where it is published');
  const out: StoredChunk[] = [];
  // Small pages: each is one task of the service's event loop (~5 ms at 250 records of 100-d).
  for await (const page of backend.exportRecords(250)) {
    page.ids.forEach((id, i) => out.push({ id, text: page.documents[i] ?? '', metadata: scalarMetadata(page.metadatas[i]), embedding: page.embeddings[i] ?? [] }));
  }
  return out;
}

function scalarMetadata(m: StoreHit['metadata'] | undefined): Chunk['metadata'] {
  const out: Chunk['metadata'] = {};
  for (const [k, v] of Object.entries(m ?? {})) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

/** The documents of the served version: chunks grouped by their `source`, sorted by name. */
export async function listDocuments(gen: Generation): Promise<DocumentEntry[]> {
  const backend = gen.store.store;
  const by = new Map<string, DocumentEntry>();
  const add = (m: StoreHit['metadata'] | undefined, id: string) => {
    const source = typeof m?.source === 'string' ? m.source : id.replace(/#\d+$/, '');
    const e = by.get(source) ?? { source, title: typeof m?.title === 'string' ? m.title : source, type: typeof m?.type === 'string' ? m.type : '', chunks: 0 };
    e.chunks++;
    by.set(source, e);
  };
  if (backend.exportRecords) {
    for await (const page of backend.exportRecords()) page.ids.forEach((id, i) => add(page.metadatas[i], id));
  } else {
    throw new RagError('RAG_DOCS_UNAVAILABLE', 'the served store is a remote Chroma (CHROMA_URL): documents are listed where it is published');
  }
  return [...by.values()].sort((a, b) => a.source.localeCompare(b.source));
}

/**
 * Can a change be published here? The served store must be a versioned folder (CURRENT + version
 * folders) in VECTORSTORE_DIR, and that folder writable (a compose `:ro` mount is not: EROFS).
 * Checked by making (and removing) a probe folder, which is what publishing does first.
 */
export async function checkWritable(vectorstoreDir: string, gen: Generation | null): Promise<void> {
  if (gen && gen.store.kind !== 'versioned') {
    throw new RagError(
      'RAG_DOCS_UNAVAILABLE',
      gen.store.kind === 'remote'
        ? 'the served store is a remote Chroma (CHROMA_URL): documents are changed where it is published (npm run ingest -- --chroma-url)'
        : `the served store is a flat folder (${vectorstoreDir} holds chroma.sqlite3 itself); documents from the browser publish versions: use a versioned store (npm run ingest)`,
    );
  }
  try {
    await access(vectorstoreDir, constants.W_OK);
    const probe = await mkdtemp(join(vectorstoreDir, '.tmp-probe-'));
    await rm(probe, { recursive: true, force: true });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'EROFS' ? 'is mounted read-only' : code === 'EACCES' || code === 'EPERM' ? 'is not writable by the service user' : `cannot be written (${code ?? String(cause)})`;
    throw new RagError(
      'RAG_DOCS_READ_ONLY',
      `the store folder ${why}: documents can be listed but not changed here. Mount VECTORSTORE_DIR read-write (compose: drop ":ro" on the vectorstore volume) to upload and delete from the console`,
      { cause, details: { errno: code } },
    );
  }
}

export type DocumentChange = { kind: 'upload'; document: Document } | { kind: 'delete'; source: string };

export interface ChangeProgress {
  stage: 'reading' | 'chunking' | 'embedding' | 'publishing' | 'published';
  done?: number;
  total?: number;
  detail?: string;
}

export interface ChangeResult {
  version: string;
  documents: number;
  chunks: number;
  /** Chunks whose vectors were reused from the served version / embedded now. */
  reused: number;
  embedded: number;
}

/**
 * The served version's own acceptance questions, carried into the version a change publishes, so
 * an upload or delete never drops the store's quality gate (a delete of a document its questions
 * expect is then refused by the reload, and the served version stays). Read from the published
 * folder and checked against the sha256 its manifest recorded: published files are immutable.
 */
async function servedAcceptance(gen: Generation, vectorstoreDir: string): Promise<AcceptanceSpec | null> {
  const text = await readAcceptance(join(vectorstoreDir, gen.store.version), { version: gen.store.version, manifest: gen.store.manifest });
  return text === null ? null : parseAcceptance(text, { what: `${ACCEPTANCE_FILE} of the served store version ${gen.store.version}`, code: 'RAG_STORE_ACCEPTANCE_INVALID' });
}

/**
 * Apply one change to the served version's records and publish the result as a new version
 * (publishStoreVersion: built in .tmp-<version>, manifest, rename, then CURRENT by rename). The
 * caller holds a lease on `gen` for the whole call, and triggers the reload.
 */
export async function publishChange(options: {
  gen: Generation;
  change: DocumentChange;
  vectorstoreDir: string;
  keepVersions: number;
  logger: Logger;
  onProgress?: (p: ChangeProgress) => void;
}): Promise<ChangeResult> {
  const { gen, change, onProgress } = options;
  onProgress?.({ stage: 'reading' });
  const stored = await readAll(gen);
  const acceptance = await servedAcceptance(gen, options.vectorstoreDir);
  const source = change.kind === 'upload' ? String(change.document.metadata.source) : change.source;
  const sourceOf = (c: Chunk) => (typeof c.metadata.source === 'string' ? c.metadata.source : c.id.replace(/#\d+$/, ''));
  const kept = stored.filter((c) => sourceOf(c) !== source);
  if (change.kind === 'delete') {
    if (kept.length === stored.length) throw new RagError('RAG_DOCS_NOT_FOUND', `no document "${source}" in store version ${gen.store.version}`);
    if (kept.length === 0) throw new RagError('RAG_DOCS_LAST_DOCUMENT', `"${source}" is the last document of the store; a store needs at least one (upload another first)`);
  }
  const manifest = gen.store.manifest;
  const chunking = manifest?.chunking ?? DEFAULT_CHUNKING;
  onProgress?.({ stage: 'chunking' });
  const added = change.kind === 'upload' ? await splitDocuments([change.document], chunking) : [];
  // Vectors are reused only when the served model made them: same model id as the manifest records.
  const sameModel = manifest?.embedding.modelId === gen.model.id;
  const chunks: Array<Chunk & { embedding?: number[] }> = [
    ...kept.map((c) => (sameModel && c.embedding.length === gen.model.dimension ? c : { id: c.id, text: c.text, metadata: c.metadata })),
    ...added,
  ];
  const reused = chunks.filter((c) => c.embedding).length;
  const embedded = chunks.length - reused;
  const documents = new Set(chunks.map(sourceOf)).size;
  onProgress?.({ stage: 'embedding', done: 0, total: chunks.length, detail: `${embedded} to embed, ${reused} reused` });
  const result = await publishStoreVersion({
    outDir: options.vectorstoreDir,
    chunks,
    model: gen.model,
    logger: options.logger,
    collection: gen.store.store.name || manifest?.collection || DEFAULT_COLLECTION,
    documentCount: documents,
    chunking,
    keepVersions: options.keepVersions,
    ...(acceptance ? { acceptance } : {}),
    onProgress: (done, total) => onProgress?.({ stage: done >= total ? 'publishing' : 'embedding', done, total }),
  });
  onProgress?.({ stage: 'published', detail: result.version });
  return { version: result.version, documents, chunks: chunks.length, reused, embedded };
}
