import { BaseRetriever } from '@langchain/core/retrievers';
import { Document } from '@langchain/core/documents';
import type { Generation } from '../reload/generation.js';
import type { MetadataFilter, StoreHit } from '../store/chroma-store.js';
import { retrieve, type FusionSettings, type RetrievalMode } from './hybrid.js';

export interface Source {
  id: string;
  text: string;
  score: number;
  /** Hybrid mode: the cosine similarity and BM25 score each side gave (absent when a side missed it). */
  denseScore?: number;
  keywordScore?: number;
  metadata: Record<string, string | number | boolean | null>;
}

export interface RetrieveOptions {
  k: number;
  filter?: MetadataFilter | undefined;
  mode?: RetrievalMode;
  contains?: string | undefined;
  fusion?: FusionSettings;
}

/**
 * LangChain retriever bound to one generation (its model and its store version), so a request
 * that holds the generation's lease retrieves from exactly one store version.
 */
export class GenerationRetriever extends BaseRetriever {
  lc_namespace = ['rag', 'retrievers'];

  constructor(
    private readonly generation: Generation,
    private readonly options: RetrieveOptions,
  ) {
    super();
  }

  override async _getRelevantDocuments(query: string): Promise<Document[]> {
    const hits = await retrieveHits(this.generation, query, this.options);
    return hits.map(
      (h) =>
        new Document({
          id: h.id,
          pageContent: h.text,
          metadata: { ...h.metadata, [SCORES]: { id: h.id, score: h.score, denseScore: h.denseScore, keywordScore: h.keywordScore } },
        }),
    );
  }
}

/** Retrieval scores ride in the Document metadata under this key, apart from the chunk's own metadata. */
const SCORES = '__rag_scores';

/** Dense, keyword or hybrid retrieval over the generation's store version. */
export function retrieveHits(generation: Generation, query: string, options: RetrieveOptions): Promise<Array<StoreHit & { denseScore?: number; keywordScore?: number }>> {
  return retrieve(generation, query, { k: options.k, mode: options.mode ?? 'hybrid', filter: options.filter, contains: options.contains, ...options.fusion });
}

const round = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? undefined : Math.round(x * 1e6) / 1e6);

export function documentsToSources(docs: Document[]): Source[] {
  return docs.map((d) => {
    const { [SCORES]: scores, ...metadata } = d.metadata as Record<string, unknown>;
    const s = scores as { id: string; score: number; denseScore?: number; keywordScore?: number };
    const dense = round(s.denseScore);
    const keyword = round(s.keywordScore);
    return {
      id: s.id ?? String(d.id),
      text: d.pageContent,
      score: round(s.score) ?? 0,
      ...(dense !== undefined ? { denseScore: dense } : {}),
      ...(keyword !== undefined ? { keywordScore: keyword } : {}),
      metadata: metadata as Source['metadata'],
    };
  });
}
