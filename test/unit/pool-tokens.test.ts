import { describe, expect, it } from 'vitest';
import { rng } from '../../bench/lib/rng.js';
import { poolTokens, POOLING_MODES, type PoolingMode, type SentenceProfile, type TokenBatch } from '../../src/embeddings/sentence-config.js';

/**
 * poolTokens (sentence-transformers' Pooling) against its plain form: token by token into every
 * dimension, fresh arrays per row. The served form reorders the loops (per dimension, over tokens in
 * token order) and reuses its scratch; every vector must be the same doubles, bit for bit, or a
 * store's rankings would move with the refactoring.
 */
function referencePool(batch: TokenBatch, profile: Pick<SentenceProfile, 'pooling' | 'normalize' | 'includePrompt'>): number[][] {
  const [rows, seq, dim] = batch.dims;
  const out: number[][] = new Array(rows);
  for (let r = 0; r < rows; r++) {
    const m = new Float64Array(seq);
    let leftPad = -1;
    for (let s = 0; s < seq; s++) {
      m[s] = Number(batch.mask[r * seq + s]);
      if (leftPad < 0 && m[s] !== 0) leftPad = s;
    }
    if (!profile.includePrompt && batch.promptLength > 0) {
      for (let s = 0; s < Math.min(seq, Math.max(0, leftPad) + batch.promptLength); s++) m[s] = 0;
    }
    const at = (s: number, d: number) => batch.hidden[(r * seq + s) * dim + d]!;
    const vec: number[] = [];
    for (const mode of profile.pooling) {
      const v = new Float64Array(dim);
      if (mode === 'cls') {
        let first = 0;
        while (first < seq && m[first] === 0) first++;
        if (first === seq) first = 0;
        for (let d = 0; d < dim; d++) v[d] = at(first, d);
      } else if (mode === 'max') {
        v.fill(-Infinity);
        for (let s = 0; s < seq; s++) if (m[s]) for (let d = 0; d < dim; d++) v[d] = Math.max(v[d]!, at(s, d));
        for (let d = 0; d < dim; d++) if (v[d] === -Infinity) v[d] = 0;
      } else if (mode === 'lasttoken') {
        let last = seq - 1;
        while (last >= 0 && m[last] === 0) last--;
        if (last >= 0) for (let d = 0; d < dim; d++) v[d] = at(last, d);
      } else {
        let weightSum = 0;
        for (let s = 0; s < seq; s++) {
          const w = m[s]! * (mode === 'weightedmean' ? s + 1 : 1);
          if (!w) continue;
          weightSum += w;
          for (let d = 0; d < dim; d++) v[d] = v[d]! + w * at(s, d);
        }
        const denom = Math.max(weightSum, 1e-9);
        const div = mode === 'mean_sqrt_len_tokens' ? Math.sqrt(denom) : denom;
        for (let d = 0; d < dim; d++) v[d] = v[d]! / div;
      }
      for (let d = 0; d < dim; d++) vec.push(v[d]!);
    }
    if (profile.normalize) {
      let n = 0;
      for (const x of vec) n += x * x;
      const norm = Math.max(Math.sqrt(n), 1e-12);
      for (let i = 0; i < vec.length; i++) vec[i] = vec[i]! / norm;
    }
    out[r] = vec;
  }
  return out;
}



describe('poolTokens', () => {
  it('gives the plain form\'s vectors bit for bit: every mode and pair of modes, padding left or right, prompts excluded or not, normalised or not', () => {
    const r = rng(7);
    const modeSets: PoolingMode[][] = [...POOLING_MODES.map((m) => [m]), ['cls', 'mean'], ['mean', 'max'], ['weightedmean', 'lasttoken', 'mean_sqrt_len_tokens']];
    let cases = 0;
    for (let t = 0; t < 400; t++) {
      const rows = 1 + Math.floor(r() * 3);
      const seq = 1 + Math.floor(r() * 20);
      const dim = [4, 7, 100, 384][t % 4]!;
      const hidden = Float32Array.from({ length: rows * seq * dim }, () => (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20));
      // Magnitudes over 40 decades: sums of a few such floats are not exact in double precision, so an
      // addition made in another order shows (over a few decades they would be exact in any order).
      // Real tokens, then padding (or padding first); now and then a row with no real token at all.
      const left = r() < 0.3;
      const mask: number[] = [];
      for (let row = 0; row < rows; row++) {
        const real = r() < 0.05 ? 0 : 1 + Math.floor(r() * seq);
        for (let s = 0; s < seq; s++) mask.push(left ? (s >= seq - real ? 1 : 0) : s < real ? 1 : 0);
      }
      const batch: TokenBatch = { hidden, dims: [rows, seq, dim], mask: t % 5 === 0 ? BigInt64Array.from(mask, BigInt) : mask, promptLength: Math.floor(r() * 4) };
      const profile = { pooling: modeSets[t % modeSets.length]!, normalize: r() < 0.7, includePrompt: r() < 0.5 };
      const want = referencePool(batch, profile);
      const got = poolTokens(batch, profile);
      expect(got).toHaveLength(rows);
      got.forEach((v, i) => {
        expect(v).toHaveLength(dim * profile.pooling.length);
        // Bit for bit (Object.is: -0 and NaN included).
        const bad = v.findIndex((x, j) => !Object.is(x, want[i]![j]));
        expect(bad, `case ${t} row ${i} [${bad}]: ${v[bad]} against ${want[i]![bad]}`).toBe(-1);
      });
      cases++;
    }
    expect(cases).toBe(400);
  });

  it('a call with a smaller batch after a bigger one reads no stale scratch', () => {
    const big: TokenBatch = { hidden: new Float32Array(30 * 384).fill(3), dims: [1, 30, 384], mask: new Array(30).fill(1), promptLength: 0 };
    const small: TokenBatch = { hidden: Float32Array.from({ length: 2 * 4 }, (_, i) => i), dims: [1, 2, 4], mask: [1, 0], promptLength: 0 };
    const profile = { pooling: ['max', 'mean'] as PoolingMode[], normalize: false, includePrompt: true };
    poolTokens(big, profile);
    expect(poolTokens(small, profile)).toEqual([[0, 1, 2, 3, 0, 1, 2, 3]]);
    expect(poolTokens(small, { ...profile, pooling: ['lasttoken'] })).toEqual([[0, 1, 2, 3]]);
  });
});
