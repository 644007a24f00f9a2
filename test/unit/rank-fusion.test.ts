import { describe, expect, it } from 'vitest';
import { fuseRanks, type Candidate } from '../../src/rag/hybrid.js';

/** Ranked lists (best first) from ids; the side's own score is 100 - rank, to see it carried through. */
const list = (...ids: string[]): Candidate[] => ids.map((id, i) => ({ id, score: 100 - i }));
const W = { dense: 0.3, keyword: 1 };

describe('weighted reciprocal rank fusion (fuseRanks)', () => {
  it('adds weight / (rrfK + rank) from each side and ranks by the sum', () => {
    const out = fuseRanks(list('a', 'b', 'c'), list('c', 'd'), 10, W, 10);
    expect(out.map((c) => c.id)).toEqual(['c', 'd', 'a', 'b']);
    expect(out[0]!.score).toBeCloseTo(0.3 / 13 + 1 / 11, 12);
    expect(out[1]!.score).toBeCloseTo(1 / 12, 12);
    expect(out[2]!.score).toBeCloseTo(0.3 / 11, 12);
    expect(out[3]!.score).toBeCloseTo(0.3 / 12, 12);
  });

  it("keeps each side's own score, and leaves out the side that missed an id", () => {
    const out = fuseRanks(list('a', 'c'), list('c', 'd'), 10, W, 10);
    const byId = new Map(out.map((c) => [c.id, c]));
    expect(byId.get('c')).toMatchObject({ denseScore: 99, keywordScore: 100 });
    expect(byId.get('a')).toMatchObject({ denseScore: 100 });
    expect(byId.get('a')!.keywordScore).toBeUndefined();
    expect(byId.get('d')).toMatchObject({ keywordScore: 99 });
    expect(byId.get('d')!.denseScore).toBeUndefined();
  });

  it('cuts to k after ranking, not before', () => {
    // 'z' is last on the dense side but first on the keyword side: it must survive a cut to 1.
    const out = fuseRanks(list('a', 'b', 'z'), list('z'), 1, W, 10);
    expect(out.map((c) => c.id)).toEqual(['z']);
    expect(fuseRanks(list('a', 'b'), [], 0, W, 10)).toEqual([]);
  });

  it('an id found by both sides outranks one found by one side at the same rank', () => {
    const out = fuseRanks(list('both', 'dense-only'), list('both', 'kw-only'), 3, { dense: 1, keyword: 1 }, 10);
    expect(out.map((c) => c.id)).toEqual(['both', 'dense-only', 'kw-only']);
    expect(out[0]!.score).toBeCloseTo(2 / 11, 12);
  });

  it('equal scores keep first-seen order: dense list first, then keyword-only ids', () => {
    const out = fuseRanks(list('d1', 'd2'), list('k1', 'k2'), 4, { dense: 1, keyword: 1 }, 10);
    expect(out.map((c) => c.id)).toEqual(['d1', 'k1', 'd2', 'k2']);
  });

  it('the weights decide between sides; a zero weight makes that side only a tie-breaker', () => {
    expect(fuseRanks(list('d'), list('k'), 2, { dense: 2, keyword: 1 }, 10).map((c) => c.id)).toEqual(['d', 'k']);
    expect(fuseRanks(list('d'), list('k'), 2, { dense: 1, keyword: 2 }, 10).map((c) => c.id)).toEqual(['k', 'd']);
    const zero = fuseRanks(list('d1', 'k2'), list('k1', 'k2'), 3, { dense: 0, keyword: 1 }, 10);
    expect(zero.map((c) => c.id)).toEqual(['k1', 'k2', 'd1']);
    expect(zero[2]!.score).toBe(0);
  });

  it('rrfK sets how much rank 1 beats rank 2', () => {
    const sharp = fuseRanks(list('a', 'b'), [], 2, W, 0);
    expect(sharp[0]!.score / sharp[1]!.score).toBeCloseTo(2, 12);
    const flat = fuseRanks(list('a', 'b'), [], 2, W, 1000);
    expect(flat[0]!.score / flat[1]!.score).toBeCloseTo(1002 / 1001, 12);
  });

  it('empty sides give an empty result; one empty side gives the other in its own order', () => {
    expect(fuseRanks([], [], 5, W, 10)).toEqual([]);
    expect(fuseRanks([], list('x', 'y', 'z'), 5, W, 10).map((c) => c.id)).toEqual(['x', 'y', 'z']);
    expect(fuseRanks(list('x', 'y', 'z'), [], 5, W, 10).map((c) => c.id)).toEqual(['x', 'y', 'z']);
  });

  it('does not change its inputs', () => {
    const dense = list('a', 'b');
    const keyword = list('b', 'a');
    const before = JSON.stringify([dense, keyword]);
    fuseRanks(dense, keyword, 2, W, 10);
    expect(JSON.stringify([dense, keyword])).toBe(before);
  });
});
