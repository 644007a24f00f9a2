import { Embeddings } from '@langchain/core/embeddings';
import type { EmbeddingBatcher } from './batcher.js';
import type { EmbeddingModel } from './model-loader.js';

/**
 * LangChain `Embeddings` over one loaded model: documents go through the model in fixed
 * batches (with the model's document prompt), queries through the generation's micro-batcher
 * (with its query prompt).
 */
export class LocalTransformersEmbeddings extends Embeddings {
  constructor(
    private readonly model: EmbeddingModel,
    private readonly batcher?: EmbeddingBatcher,
    private readonly documentBatchSize = 64,
  ) {
    super({ maxConcurrency: 1 });
  }

  async embedDocuments(texts: string[]): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < texts.length; i += this.documentBatchSize) {
      out.push(...(await this.model.embedBatch(texts.slice(i, i + this.documentBatchSize), 'document')));
    }
    return out;
  }

  async embedQuery(text: string): Promise<number[]> {
    if (this.batcher) return this.batcher.embed(text);
    const [v] = await this.model.embedBatch([text], 'query');
    return v!;
  }
}
