import { constants } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Document } from '@langchain/core/documents';
import { RagError } from '../errors.js';
import type { Generation } from '../reload/generation.js';
import type { Logger } from '../observability/logger.js';
import type { StoreHit } from '../store/chroma-store.js';
import { titleOf } from './load-documents.js';
import { DEFAULT_COLLECTION, publishStoreVersion } from './publish.js';
import { splitDocuments, type Chunk } from './split-documents.js';

/**
 * Documents from the browser: one change (an upload or a delete) at a time becomes a new store
 * version through the ingest pipeline (load -> split -> embed -> publishStoreVersion), built from the
 * records of the version being served. Unchanged chunks keep their vectors (read back from the
 * served store) when the served model is the one the store was built with; otherwise every chunk
 * is embedded again. Uploaded bytes are never written to disk: the text is taken from memory.
 */

/** Upload types: extension -> the type recorded in metadata (what load-documents.ts records). */
export const UPLOAD_TYPES: Readonly<Record<string, 'md' | 'markdown' | 'txt' | 'html' | 'htm' | 'pdf'>> = {
  '.md': 'md',
  '.markdown': 'markdown',
  '.txt': 'txt',
  '.html': 'html',
  '.htm': 'htm',
  '.pdf': 'pdf',
};

export const MAX_NAME_LENGTH = 120;
const NAME_OK = /^[\p{L}\p{N}][\p{L}\p{N} ._()+,-]*$/u;

/**
 * A safe document name from an uploaded file name: one path segment of letters, digits, spaces and
 * `._()+,-`, NFC, at most 120 characters, a supported extension. Anything else (folders, `..`,
 * control characters, hidden names) is refused, never rewritten: the name is the document's id.
 */
export function checkDocumentName(raw: unknown): { name: string; ext: string } {
  if (typeof raw !== 'string' || raw.length === 0) throw new RagError('RAG_DOCS_BAD_NAME', 'give the file name as ?name=<file name>');
  const name = raw.normalize('NFC');
  if (/[/\\]/.test(name) || name === '.' || name === '..') {
    throw new RagError('RAG_DOCS_BAD_NAME', `file name ${JSON.stringify(name.slice(0, 200))} holds a path; give a plain file name (no folders, no "/" or "\\")`);
  }
  if (name.length > MAX_NAME_LENGTH) throw new RagError('RAG_DOCS_BAD_NAME', `file name is ${name.length} characters long; at most ${MAX_NAME_LENGTH}`);
  if (!NAME_OK.test(name) || name.endsWith(' ') || name.endsWith('.')) {
    throw new RagError('RAG_DOCS_BAD_NAME', `file name ${JSON.stringify(name)} is not accepted: start with a letter or digit, then letters, digits, spaces and . _ ( ) + , - only`);
  }
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 ? name.slice(dot).toLowerCase() : '';
  if (!(ext in UPLOAD_TYPES)) {
    throw new RagError('RAG_DOCS_UNSUPPORTED_TYPE', `${ext ? `"${ext}" files are` : 'a file without an extension is'} not accepted; upload ${Object.keys(UPLOAD_TYPES).join(', ')}`);
  }
  return { name, ext };
}

/** Magic numbers of binary formats that are never text. */
const BINARY_MAGIC: Array<[string, number[]]> = [
  ['PDF', [0x25, 0x50, 0x44, 0x46, 0x2d]],
  ['ZIP (docx, xlsx, epub, ...)', [0x50, 0x4b, 0x03, 0x04]],
  ['PNG', [0x89, 0x50, 0x4e, 0x47]],
  ['JPEG', [0xff, 0xd8, 0xff]],
  ['GIF', [0x47, 0x49, 0x46, 0x38]],
  ['ELF executable', [0x7f, 0x45, 0x4c, 0x46]],
  ['gzip', [0x1f, 0x8b]],
  ['OLE (doc, xls)', [0xd0, 0xcf, 0x11, 0xe0]],
];
const startsWith = (bytes: Uint8Array, magic: number[]) => magic.every((b, i) => bytes[i] === b);
const HTML_MARKUP = /<\s*(!doctype\s+html|html|head|body|title|p|div|span|h[1-6]|article|section|main|ul|ol|li|table|a|br|pre)\b/i;
// C0 controls other than tab, newline, form feed and carriage return, and DEL: not in text files.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000e-\u001f\u007f]/;

/**
 * Check the bytes are what the extension says (by content, not by name) and take their text.
 * PDF: the `%PDF-` header, then its text layer (pdf-parse through LangChain's PDFLoader);
 * Markdown, text, HTML: valid UTF-8 without binary control characters, HTML with markup in it.
 */
export async function extractText(name: string, ext: string, bytes: Uint8Array): Promise<Document> {
  const type = UPLOAD_TYPES[ext]!;
  const binary = BINARY_MAGIC.find(([, magic]) => startsWith(bytes, magic));
  let text: string;
  if (type === 'pdf') {
    if (!startsWith(bytes, BINARY_MAGIC[0]![1])) {
      throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} is named .pdf but its content is not a PDF (no %PDF- header)`);
    }
    try {
      const { PDFLoader } = await import('@langchain/community/document_loaders/fs/pdf');
      const docs = await new PDFLoader(new Blob([bytes as Uint8Array<ArrayBuffer>]), { splitPages: false }).load();
      text = docs.map((d) => d.pageContent).join('\n\n');
    } catch (cause) {
      throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} could not be read as a PDF: ${(cause as Error).message.slice(0, 200)}`, { cause });
    }
  } else {
    if (binary) throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} is named ${ext} but its content is ${binary[0]}, not text`);
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch (cause) {
      throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} is not UTF-8 text`, { cause });
    }
    if (CONTROL.test(text)) throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} holds binary control characters; it is not a ${ext} text file`);
    const html = HTML_MARKUP.test(text);
    if ((type === 'html' || type === 'htm') && !html) {
      throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} is named ${ext} but holds no HTML markup`);
    }
    if (type !== 'html' && type !== 'htm' && /^\s*<(!doctype\s+html|html)\b/i.test(text)) {
      throw new RagError('RAG_DOCS_TYPE_MISMATCH', `${name} is an HTML page named ${ext}; upload it as .html`);
    }
    if (type === 'html' || type === 'htm') {
      const { HtmlToTextTransformer } = await import('@langchain/community/document_transformers/html_to_text');
      const t = new HtmlToTextTransformer({ wordwrap: false, selectors: [{ selector: 'a', options: { ignoreHref: true } }] });
      text = (await t.transformDocuments([new Document({ pageContent: text })]))[0]?.pageContent ?? '';
    }
  }
  if (!text.trim()) throw new RagError('RAG_DOCS_NO_TEXT', `${name} has no text to index${type === 'pdf' ? ' (a scanned PDF without a text layer?)' : ''}`);
  const doc = new Document({ pageContent: text });
  doc.metadata = { source: name, title: titleOf(doc, name), type };
  return doc;
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
  for await (const page of backend.exportRecords()) {
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
  const source = change.kind === 'upload' ? String(change.document.metadata.source) : change.source;
  const sourceOf = (c: Chunk) => (typeof c.metadata.source === 'string' ? c.metadata.source : c.id.replace(/#\d+$/, ''));
  const kept = stored.filter((c) => sourceOf(c) !== source);
  if (change.kind === 'delete') {
    if (kept.length === stored.length) throw new RagError('RAG_DOCS_NOT_FOUND', `no document "${source}" in store version ${gen.store.version}`);
    if (kept.length === 0) throw new RagError('RAG_DOCS_LAST_DOCUMENT', `"${source}" is the last document of the store; a store needs at least one (upload another first)`);
  }
  const manifest = gen.store.manifest;
  const chunking = manifest?.chunking ?? { chunkSize: 1000, chunkOverlap: 150 };
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
    onProgress: (done, total) => onProgress?.({ stage: done >= total ? 'publishing' : 'embedding', done, total }),
  });
  onProgress?.({ stage: 'published', detail: result.version });
  return { version: result.version, documents, chunks: chunks.length, reused, embedded };
}
