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

/** Dense, keyword or hybrid retrieval over the generation's store version. */
export function retrieveHits(generation: Generation, query: string, options: RetrieveOptions): Promise<Array<StoreHit & { denseScore?: number; keywordScore?: number }>> {
  return retrieve(generation, query, { k: options.k, mode: options.mode ?? 'hybrid', filter: options.filter, contains: options.contains, ...options.fusion });
}

const round = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? undefined : Math.round(x * 1e6) / 1e6);

/** A retrieved chunk as the API returns it (scores rounded to 6 decimals; a side's score only where that side found it). */
export function hitToSource(h: StoreHit & { denseScore?: number; keywordScore?: number }): Source {
  const dense = round(h.denseScore);
  const keyword = round(h.keywordScore);
  return {
    id: h.id,
    text: h.text,
    score: round(h.score) ?? 0,
    ...(dense !== undefined ? { denseScore: dense } : {}),
    ...(keyword !== undefined ? { keywordScore: keyword } : {}),
    metadata: { ...h.metadata } as Source['metadata'], // a copy: the in-process index keeps its own objects
  };
}

/** The request path: retrieval straight to sources, no LangChain objects in between. */
export async function retrieveSources(generation: Generation, query: string, options: RetrieveOptions): Promise<Source[]> {
  return (await retrieveHits(generation, query, options)).map(hitToSource);
}

/** Where GenerationRetriever's documents carry their retrieval scores, apart from the chunk's own metadata. */
export const SCORES_KEY = 'retrievalScores';

/**
 * LangChain adapter (not used on the request path): a `BaseRetriever` bound to one generation
 * (its model and its store version), for LangChain users composing their own chains. Hold the
 * generation's lease while it is used. Each Document has the chunk id, its text, and its
 * metadata plus `metadata[SCORES_KEY] = { score, denseScore?, keywordScore? }` (unrounded).
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
          metadata: {
            ...h.metadata,
            [SCORES_KEY]: { score: h.score, ...(h.denseScore !== undefined ? { denseScore: h.denseScore } : {}), ...(h.keywordScore !== undefined ? { keywordScore: h.keywordScore } : {}) },
          },
        }),
    );
  }
}
