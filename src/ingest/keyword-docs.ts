import type { KeywordDoc } from '../store/keyword-analysis.js';

/** A chunk as the keyword index sees it: text, document title, heading path. */
export function keywordDoc(c: { id: string; text: string; metadata: Record<string, unknown> }): KeywordDoc {
  const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  return { id: c.id, text: c.text, title: str(c.metadata.title), headings: str(c.metadata.headings) };
}

/** The keyword documents of a version's chunks, in order: each with the text of its neighbours from the same document. */
export function keywordDocs(chunks: ReadonlyArray<{ id: string; text: string; metadata: Record<string, unknown> }>): KeywordDoc[] {
  return chunks.map((c, i) => {
    const same = (j: number) => (chunks[j]?.metadata.source === c.metadata.source ? chunks[j]!.text : '');
    return { ...keywordDoc(c), neighbours: `${same(i - 1)}\n${same(i + 1)}`.trim() || undefined };
  });
}
