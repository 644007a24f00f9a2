import { Embeddings } from '@langchain/core/embeddings';
import type { EmbeddingBatcher } from './batcher.js';
import type { EmbeddingModel } from './model-loader.js';
import { ModelEmbeddings } from './model-embeddings.js';

/**
 * LangChain `Embeddings` over one loaded model (for LangChain users): the same calls as the
 * request path's ModelEmbeddings, documents in fixed batches, queries through the micro-batcher.
 */
export class LocalTransformersEmbeddings extends Embeddings {
  private readonly inner: ModelEmbeddings;

  constructor(model: EmbeddingModel, batcher?: EmbeddingBatcher, documentBatchSize = 64) {
    super({ maxConcurrency: 1 });
    this.inner = new ModelEmbeddings(model, batcher, documentBatchSize);
  }

  embedDocuments(texts: string[]): Promise<number[][]> {
    return this.inner.embedDocuments(texts);
  }

  embedQuery(text: string): Promise<number[]> {
    return this.inner.embedQuery(text);
  }
}
