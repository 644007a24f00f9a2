import { readdir } from 'node:fs/promises';
import { extname, join, relative, sep } from 'node:path';
import { TextLoader } from '@langchain/classic/document_loaders/fs/text';
import { HtmlToTextTransformer } from '@langchain/community/document_transformers/html_to_text';
import { PDFLoader } from '@langchain/community/document_loaders/fs/pdf';
import type { Document } from '@langchain/core/documents';
import { RagError } from '../errors.js';

export const SUPPORTED_EXTENSIONS = ['.md', '.markdown', '.txt', '.html', '.htm', '.pdf'] as const;

async function walk(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .filter((p) => !p.split(sep).some((part) => part.startsWith('.')))
    .sort();
}

export function titleOf(doc: Document, rel: string): string {
  const heading = /^#\s+(.+)$/m.exec(doc.pageContent)?.[1];
  return (heading ?? rel.replace(/\.[^.]+$/, '')).trim().slice(0, 200);
}

/**
 * Load every supported file below docsDir with LangChain loaders: text and Markdown with
 * TextLoader, HTML with TextLoader + html-to-text, PDF with PDFLoader (one document per file).
 * Metadata: source (path relative to docsDir), title, type.
 */
export async function loadDocuments(docsDir: string): Promise<{ documents: Document[]; skipped: string[] }> {
  let files: string[];
  try {
    files = await walk(docsDir);
  } catch (cause) {
    throw new RagError('RAG_INGEST_NO_DOCUMENTS', `cannot read the documents folder ${docsDir}`, { cause });
  }
  const documents: Document[] = [];
  const skipped: string[] = [];
  const html = new HtmlToTextTransformer({ wordwrap: false, selectors: [{ selector: 'a', options: { ignoreHref: true } }] });
  for (const file of files) {
    const ext = extname(file).toLowerCase();
    const rel = relative(docsDir, file).split(sep).join('/');
    if (!(SUPPORTED_EXTENSIONS as readonly string[]).includes(ext)) {
      skipped.push(rel);
      continue;
    }
    let docs: Document[];
    try {
      if (ext === '.pdf') docs = await new PDFLoader(file, { splitPages: false }).load();
      else {
        docs = await new TextLoader(file).load();
        if (ext === '.html' || ext === '.htm') docs = await html.transformDocuments(docs);
      }
    } catch (cause) {
      throw new RagError('RAG_INGEST_FAILED', `cannot load ${rel}: ${(cause as Error).message}`, { cause });
    }
    for (const doc of docs) {
      if (!doc.pageContent.trim()) continue;
      doc.metadata = { source: rel, title: titleOf(doc, rel), type: ext.slice(1) };
      documents.push(doc);
    }
  }
  if (documents.length === 0) {
    throw new RagError('RAG_INGEST_NO_DOCUMENTS', `no ${SUPPORTED_EXTENSIONS.join('/')} documents with text in ${docsDir}`);
  }
  return { documents, skipped };
}
