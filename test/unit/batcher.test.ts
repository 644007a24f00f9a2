import { describe, expect, it } from 'vitest';
import { EmbeddingBatcher } from '../../src/embeddings/batcher.js';
import type { EmbeddingModel } from '../../src/embeddings/model-loader.js';

/** A model stand-in that records its calls (the batcher's logic, not the model, is under test). */
function recordingModel(delayMs = 5) {
  const calls: string[][] = [];
  const model = {
    id: 'm',
    name: 'm',
    dir: '/',
    dtype: 'fp32',
    dimension: 1,
    loadedAt: '',
    loadMs: 0,
    async embedBatch(texts: string[]) {
      calls.push(texts);
      await new Promise((r) => setTimeout(r, delayMs));
      return texts.map((t) => [t.length]);
    },
    async dispose() {},
  } as EmbeddingModel;
  return { model, calls };
}

describe('EmbeddingBatcher', () => {
  it('sends a lone text at once, without waiting for company', async () => {
    const { model, calls } = recordingModel(0);
    const b = new EmbeddingBatcher(model, { maxBatch: 8, maxWaitMs: 1000 });
    const t = performance.now();
    expect(await b.embed('abc')).toEqual([3]);
    expect(performance.now() - t).toBeLessThan(200);
    expect(calls).toEqual([['abc']]);
  });

  it('coalesces texts that arrive while the model is busy, keeps order, respects maxBatch', async () => {
    const { model, calls } = recordingModel(20);
    const b = new EmbeddingBatcher(model, { maxBatch: 3, maxWaitMs: 1000 });
    const first = b.embed('a');
    await new Promise((r) => setTimeout(r, 2));
    const rest = ['bb', 'ccc', 'dddd', 'eeeee'].map((t) => b.embed(t));
    const out = await Promise.all([first, ...rest]);
    expect(out).toEqual([[1], [2], [3], [4], [5]]);
    expect(calls[0]).toEqual(['a']);
    expect(calls.slice(1).flat()).toEqual(['bb', 'ccc', 'dddd', 'eeeee']);
    expect(Math.max(...calls.map((c) => c.length))).toBeLessThanOrEqual(3);
  });

  it('rejects every text of a failed batch', async () => {
    const model = { embedBatch: async () => Promise.reject(new Error('boom')) } as unknown as EmbeddingModel;
    const b = new EmbeddingBatcher(model, { maxBatch: 4, maxWaitMs: 1 });
    await expect(Promise.all([b.embed('x'), b.embed('y')])).rejects.toThrow('boom');
  });
});
