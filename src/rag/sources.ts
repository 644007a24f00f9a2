/**
 * The request path's retrieval: dense, keyword or hybrid hits straight to API sources, with no
 * LangChain objects in between (so serving does not import @langchain/core to answer).
 */
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
  // Built in one key order (id, text, score, denseScore?, keywordScore?, metadata) without spreads.
  const source: Source = { id: h.id, text: h.text, score: round(h.score) ?? 0 } as Source;
  if (dense !== undefined) source.denseScore = dense;
  if (keyword !== undefined) source.keywordScore = keyword;
  source.metadata = { ...h.metadata } as Source['metadata']; // a copy: the in-process index keeps its own objects
  return source;
}

/** The request path: retrieval straight to sources, no LangChain objects in between. */
export async function retrieveSources(generation: Generation, query: string, options: RetrieveOptions): Promise<Source[]> {
  return (await retrieveHits(generation, query, options)).map(hitToSource);
}

