import type { Document } from '@langchain/core/documents';
import { RecursiveCharacterTextSplitter } from '@langchain/textsplitters';

export interface Chunk {
  id: string;
  text: string;
  metadata: Record<string, string | number | boolean>;
}

export interface SplitOptions {
  chunkSize: number;
  chunkOverlap: number;
}

/** Split documents into chunks (Markdown-aware for .md), with stable ids `<source>#<n>`. */
export async function splitDocuments(documents: Document[], options: SplitOptions): Promise<Chunk[]> {
  const markdown = RecursiveCharacterTextSplitter.fromLanguage('markdown', options);
  const plain = new RecursiveCharacterTextSplitter(options);
  const chunks: Chunk[] = [];
  for (const doc of documents) {
    const meta = doc.metadata as { source: string; title: string; type: string };
    const splitter = meta.type === 'md' || meta.type === 'markdown' ? markdown : plain;
    const parts = await splitter.splitText(doc.pageContent);
    parts.forEach((text, i) => {
      if (!text.trim()) return;
      chunks.push({ id: `${meta.source}#${i}`, text, metadata: { source: meta.source, title: meta.title, type: meta.type, chunk: i } });
    });
  }
  return chunks;
}
