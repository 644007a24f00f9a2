import type { EmbeddingModel } from './model-loader.js';
import { analyzeTerm, STOP_WORDS, tokenize } from '../store/keyword-index.js';

export interface ExpansionOptions {
  /** Nearest corpus words added per query word. */
  perWord: number;
  /** Only neighbours at least this similar (cosine of the model's word vectors). */
  minCosine: number;
  /** BM25 weight of an added word relative to the query's own words. */
  weight: number;
}
export const DEFAULT_EXPANSION: ExpansionOptions = Object.freeze({ perWord: 2, minCosine: 0.6, weight: 0.4 });

const isWord = (w: string) => /^[a-z]{3,}$/.test(w) && !STOP_WORDS.has(w);

/**
 * Query expansion with an embedding model's nearest words: for each word of a question, the
 * corpus words whose model vectors are closest ("mandatory" -> "required"), so BM25 can match a
 * user's wording the documents do not use. Only words that occur in the corpus are candidates.
 */
export class NearestWords {
  private constructor(
    private readonly model: EmbeddingModel,
    private readonly words: string[],
    private readonly matrix: Float32Array,
    private readonly dim: number,
  ) {}

  /** Embed every distinct word of the corpus texts (one model call per 256 words). */
  static async build(model: EmbeddingModel, texts: Iterable<string>): Promise<NearestWords> {
    const set = new Set<string>();
    for (const t of texts) for (const w of tokenize(t)) if (isWord(w)) set.add(w);
    const words = [...set].sort();
    const dim = model.dimension;
    const matrix = new Float32Array(words.length * dim);
    for (let i = 0; i < words.length; i += 256) {
      const vecs = await model.embedBatch(words.slice(i, i + 256), 'document');
      vecs.forEach((v, j) => matrix.set(normalised(v), (i + j) * dim));
    }
    return new NearestWords(model, words, matrix, dim);
  }

  async expand(query: string, options: ExpansionOptions = DEFAULT_EXPANSION): Promise<Array<{ word: string; weight: number }>> {
    const own = [...new Set(tokenize(query).filter(isWord))];
    if (own.length === 0) return [];
    const ownStems = new Set(own.map((w) => analyzeTerm(w)));
    const vecs = await this.model.embedBatch(own, 'document');
    const out = new Map<string, number>();
    for (const v of vecs) {
      const q = normalised(v);
      const best: Array<{ i: number; c: number }> = [];
      for (let i = 0; i < this.words.length; i++) {
        let c = 0;
        const off = i * this.dim;
        for (let d = 0; d < this.dim; d++) c += q[d]! * this.matrix[off + d]!;
        if (c < options.minCosine) continue;
        best.push({ i, c });
      }
      best.sort((a, b) => b.c - a.c);
      let added = 0;
      for (const { i } of best) {
        if (added >= options.perWord) break;
        const w = this.words[i]!;
        if (ownStems.has(analyzeTerm(w))) continue;
        out.set(w, options.weight);
        added++;
      }
    }
    return [...out].map(([word, weight]) => ({ word, weight }));
  }
}

function normalised(v: number[]): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  const s = n > 0 ? 1 / Math.sqrt(n) : 0;
  return Float32Array.from(v, (x) => x * s);
}
