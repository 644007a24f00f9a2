import { BaseRetriever } from '@langchain/core/retrievers';
import { Document } from '@langchain/core/documents';
import type { Generation } from '../reload/generation.js';
import { hitToSource, retrieveHits, type RetrieveOptions, type Source } from './sources.js';

export { hitToSource, retrieveHits, retrieveSources, type RetrieveOptions, type Source } from './sources.js';

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
