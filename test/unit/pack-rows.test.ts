import { describe, expect, it } from 'vitest';
import { packRows } from '../../src/store/vector-scan.js';

describe('packRows (one page of embeddings into the matrix, each vector checked)', () => {
  it('writes the page at its row offset and leaves the other rows alone', () => {
    const m = new Float32Array(4 * 2);
    packRows(m, ['a', 'b'], [[1, 2], [3, 4]], 1, 2);
    expect(Array.from(m)).toEqual([0, 0, 1, 2, 3, 4, 0, 0]);
  });
  it('a vector of another length or a missing one is an error naming its record', () => {
    const m = new Float32Array(4);
    expect(() => packRows(m, ['a', 'b'], [[1, 2], [3]], 0, 2)).toThrow('record b has a 1-d vector, expected 2');
    expect(() => packRows(m, ['a'], [null], 0, 2)).toThrow('record a has a 0-d vector, expected 2');
  });
});
