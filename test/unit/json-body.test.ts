import { describe, expect, it } from 'vitest';
import { findLoneSurrogate, jsonDepth } from '../../src/http/middleware/json-body.js';
import { filterDepth } from '../../src/http/schemas.js';

describe('jsonDepth', () => {
  it.each([
    ['1', 0],
    ['{}', 1],
    ['[[[]]]', 3],
    ['{"a":[{"b":{}}]}', 4],
    ['"[[[[[["', 0],
    ['{"a":"\\"[[["}', 1],
    ['[1,[2],[3,[4]]]', 3],
  ])('%s -> %i', (text, want) => expect(jsonDepth(Buffer.from(text))).toBe(want));

  it('stops early above the limit on a huge body', () => {
    expect(jsonDepth(Buffer.from('['.repeat(1_000_000)), 32)).toBe(33);
  });
});

describe('findLoneSurrogate', () => {
  it('finds a lone high or low surrogate in values and keys, anywhere', () => {
    expect(findLoneSurrogate({ a: ['ok', { b: 'x\uD800y' }] })).toBe('a.1.b');
    expect(findLoneSurrogate({ ['k\uDC00']: 1 })).toBe('k\uDC00');
    expect(findLoneSurrogate({ q: 'emoji \uD83D\uDE00 is fine' })).toBeNull();
    expect(findLoneSurrogate({ q: '\uDE00\uD83D' })).toBe('q');
  });
});

describe('filterDepth', () => {
  it('counts $and/$or levels', () => {
    expect(filterDepth({ a: 1 })).toBe(1);
    expect(filterDepth({ $and: [{ a: 1 }, { $or: [{ b: 1 }, { c: 2 }] }] })).toBe(3);
  });
});
