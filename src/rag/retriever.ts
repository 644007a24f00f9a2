import { BaseRetriever } from '@langchain/core/retrievers';
import { Document } from '@langchain/core/documents';
import type { Generation } from '../reload/generation.js';
import type { MetadataFilter, StoreHit } from '../store/chroma-store.js';

export interface Source {
  id: string;
  text: string;
  score: number;
  metadata: Record<string, string | number | boolean | null>;
}

export interface RetrieveOptions {
  k: number;
  filter?: MetadataFilter | undefined;
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
    return hits.map((h) => new Document({ id: h.id, pageContent: h.text, metadata: { ...h.metadata, id: h.id, score: h.score } }));
  }
}

/** The hot path without LangChain's callback machinery: embed (micro-batched) + one Chroma query. */
export async function retrieveHits(generation: Generation, query: string, options: RetrieveOptions): Promise<StoreHit[]> {
  const vector = await generation.embeddings.embedQuery(query);
  return generation.store.store.query(vector, options.k, options.filter);
}

export function toSources(hits: StoreHit[]): Source[] {
  return hits.map((h) => ({ id: h.id, text: h.text, score: Math.round(h.score * 1e6) / 1e6, metadata: h.metadata }));
}

export function documentsToSources(docs: Document[]): Source[] {
  return docs.map((d) => {
    const { id, score, ...metadata } = d.metadata as Record<string, string | number | boolean | null>;
    return { id: String(id ?? d.id), text: d.pageContent, score: Math.round(Number(score) * 1e6) / 1e6, metadata };
  });
}
