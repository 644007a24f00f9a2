import type { EmbeddingBatcher } from './batcher.js';
import type { EmbeddingModel } from './model-loader.js';

/**
 * Embeddings over one loaded model, as the request path uses them: documents go through the
 * model in fixed batches (with the model's document prompt), queries through the generation's
 * micro-batcher (with its query prompt). Plain on purpose: LangChain's `Embeddings` base class
 * adds nothing these calls use, and importing @langchain/core costs ~0.2 s of every start
 * (langchain-embeddings.ts is the LangChain adapter, for LangChain users).
 */
export class ModelEmbeddings {
  constructor(
    private readonly model: EmbeddingModel,
    private readonly batcher?: EmbeddingBatcher,
    private readonly documentBatchSize = 64,
  ) {}

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
