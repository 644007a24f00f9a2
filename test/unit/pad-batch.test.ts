import { describe, expect, it } from 'vitest';
import { rng } from '../../bench/lib/rng.js';
import { padBatch, type EncodedRow } from '../../src/embeddings/pad-batch.js';

/**
 * The model's int64 inputs for a batch, against the plain form they were made in before (arrays
 * spread and flattened, then converted): the same values in the same places, padded on the right or
 * on the left, with and without token types, with a non-zero pad id.
 */
function plain(rows: EncodedRow[], left: boolean, padId: number) {
  const width = Math.max(1, ...rows.map((r) => r.input_ids.length));
  const pad = (xs: number[], value: number) => {
    const fill = new Array<number>(width - xs.length).fill(value);
    return left ? [...fill, ...xs] : [...xs, ...fill];
  };
  const tensor = (key: keyof EncodedRow, value: number) => BigInt64Array.from(rows.flatMap((r) => pad(r[key] ?? new Array<number>(r.input_ids.length).fill(0), value)), BigInt);
  return {
    width,
    inputIds: tensor('input_ids', padId),
    attentionMask: tensor('attention_mask', 0),
    tokenTypeIds: rows[0]?.token_type_ids ? tensor('token_type_ids', 0) : null,
  };
}


describe('padBatch', () => {
  it('matches the plain form on 300 random batches (left and right padding, token types or not, pad id 0 or not)', () => {
    const r = rng(11);
    for (let t = 0; t < 300; t++) {
      const types = t % 3 !== 0;
      const rows: EncodedRow[] = Array.from({ length: 1 + Math.floor(r() * 5) }, () => {
        const n = Math.floor(r() * 30);
        const row: EncodedRow = { input_ids: Array.from({ length: n }, () => Math.floor(r() * 30_000)), attention_mask: new Array<number>(n).fill(1) };
        if (types) row.token_type_ids = Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1));
        return row;
      });
      const left = t % 2 === 0;
      const padId = t % 4 < 2 ? 0 : 1 + Math.floor(r() * 100);
      expect(padBatch(rows, left, padId), `case ${t}`).toEqual(plain(rows, left, padId));
    }
  });

  it('a row of the batch without token types gets zeros where the first row has them', () => {
    const rows: EncodedRow[] = [
      { input_ids: [101, 7, 102], attention_mask: [1, 1, 1], token_type_ids: [0, 1, 1] },
      { input_ids: [101, 102], attention_mask: [1, 1] },
    ];
    const got = padBatch(rows, false, 9);
    expect(got.width).toBe(3);
    expect([...got.inputIds]).toEqual([101n, 7n, 102n, 101n, 102n, 9n]);
    expect([...got.tokenTypeIds!]).toEqual([0n, 1n, 1n, 0n, 0n, 0n]);
    expect([...got.attentionMask]).toEqual([1n, 1n, 1n, 1n, 1n, 0n]);
    const leftPadded = padBatch(rows, true, 9);
    expect([...leftPadded.inputIds]).toEqual([101n, 7n, 102n, 9n, 101n, 102n]);
    expect([...leftPadded.attentionMask]).toEqual([1n, 1n, 1n, 0n, 1n, 1n]);
    // An empty row still makes a one-wide batch.
    const empty = padBatch([{ input_ids: [], attention_mask: [] }], false, 5);
    expect(empty.width).toBe(1);
    expect([...empty.attentionMask]).toEqual([0n]);
  });
});
