import { Document } from '@langchain/core/documents';
import { RagError } from '../errors.js';
import { titleOf } from './load-documents.js';

/**
 * What an upload is: its name checked (one safe path segment, a supported extension) and its text
 * taken from the bytes by content. Runs in a worker thread (extract-worker.ts), so a hostile PDF
 * or a huge HTML page never blocks the service's event loop.
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

