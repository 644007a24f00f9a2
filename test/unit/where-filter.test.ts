import { describe, expect, it } from 'vitest';
import { RagError } from '../../src/errors.js';
import { compileRecordFilter, compileWhere, compileWhereDocument, rustRegex, type Metadata } from '../../src/store/where-filter.js';

/** Rows: metadata, and which where filters must match it (true) or not (false). */
const META: Metadata = { lang: 'en', n: 3, f: 1.25, ok: true, s1: '1' };

const WHERE_ROWS: Array<[filter: Record<string, unknown>, meta: Metadata | null, want: boolean]> = [
  [{ lang: 'en' }, META, true],
  [{ lang: 'de' }, META, false],
  [{ lang: { $eq: 'en' } }, META, true],
  [{ lang: { $ne: 'en' } }, META, false],
  [{ lang: { $ne: 'de' } }, META, true],
  // $ne / $nin match records without the field (Chroma: "not $eq").
  [{ absent: { $ne: 'x' } }, META, true],
  [{ absent: { $nin: ['x'] } }, META, true],
  [{ absent: { $eq: 'x' } }, META, false],
  [{ absent: { $in: ['x'] } }, META, false],
  [{ lang: { $ne: 'x' } }, null, true],
  [{ lang: 'en' }, null, false],
  // Types are kept apart: true is not 1, "1" is not 1.
  [{ ok: true }, META, true],
  [{ ok: 1 }, META, false],
  [{ s1: 1 }, META, false],
  [{ s1: '1' }, META, true],
  [{ n: '3' }, META, false],
  // Integers compare with the operand truncated; floats with the operand itself.
  [{ n: { $eq: 3.7 } }, META, true],
  [{ f: { $eq: 1.25 } }, META, true],
  [{ f: { $eq: 1 } }, META, false],
  [{ n: { $gt: 2 } }, META, true],
  [{ n: { $gt: 3 } }, META, false],
  [{ n: { $gte: 3 } }, META, true],
  [{ n: { $lt: 3 } }, META, false],
  [{ n: { $lte: 3 } }, META, true],
  [{ n: { $gt: 2.9 } }, META, true], // 3 > trunc(2.9) = 2
  [{ n: { $lt: 3.5 } }, META, false], // 3 < trunc(3.5) = 3 is false
  [{ f: { $gt: 1.2 } }, META, true],
  [{ f: { $lt: 1.25 } }, META, false],
  // Range operators match numbers only.
  [{ lang: { $gt: 0 } }, META, false],
  [{ ok: { $gte: 0 } }, META, false],
  [{ absent: { $lt: 100 } }, META, false],
  [{ lang: { $in: ['de', 'en'] } }, META, true],
  [{ lang: { $in: ['de', 'fr'] } }, META, false],
  [{ lang: { $nin: ['de', 'en'] } }, META, false],
  [{ n: { $in: [1, 3] } }, META, true],
  [{ f: { $in: [0.5, 1.25] } }, META, true],
  [{ $and: [{ lang: 'en' }, { n: 3 }] }, META, true],
  [{ $and: [{ lang: 'en' }, { n: 4 }] }, META, false],
  [{ $or: [{ lang: 'de' }, { n: 3 }] }, META, true],
  [{ $or: [{ lang: 'de' }, { n: 4 }] }, META, false],
  [{ $or: [{ $and: [{ lang: 'en' }, { ok: false }] }, { f: { $gte: 1.25 } }] }, META, true],
  // Several fields in one object: all must hold.
  [{ lang: 'en', n: 3 }, META, true],
  [{ lang: 'en', n: 4 }, META, false],
  [{}, META, true],
];

/** Filters that must be rejected, and the exact message each gets. */
const INVALID_WHERE: Array<[filter: unknown, message: string]> = [
  [[], 'a where filter must be an object'],
  ['lang', 'a where filter must be an object'],
  [{ $not: [{ a: 1 }] }, 'unknown operator $not'],
  [{ $and: [] }, '$and needs a non-empty list of filters'],
  [{ $or: { a: 1 } }, '$or needs a non-empty list of filters'],
  [{ a: null }, 'a: expected a string, number, boolean or an operator object'],
  [{ a: [1, 2] }, 'a: expected a string, number, boolean or an operator object'],
  [{ a: {} }, 'a: an operator object needs exactly one operator'],
  [{ a: { $gt: 1, $lt: 5 } }, 'a: an operator object needs exactly one operator'],
  [{ a: { $like: 'x' } }, 'a: unknown operator $like'],
  [{ a: { $eq: null } }, 'a: $eq needs a string, number or boolean'],
  [{ a: { $eq: Number.NaN } }, 'a: $eq needs a string, number or boolean'],
  [{ a: { $ne: { x: 1 } } }, 'a: $ne needs a string, number or boolean'],
  [{ a: { $gt: '3' } }, 'a: $gt needs a number'],
  [{ a: { $lte: Infinity } }, 'a: $lte needs a number'],
  [{ a: { $in: [] } }, 'a: $in needs a non-empty list of strings, numbers or booleans'],
  [{ a: { $nin: 'x' } }, 'a: $nin needs a non-empty list of strings, numbers or booleans'],
  [{ a: { $in: ['x', 1] } }, 'a: $in needs values of one type (strings, booleans, integers, or numbers starting with a non-integer)'],
  [{ a: { $in: [1, 2.5] } }, 'a: $in needs values of one type (strings, booleans, integers, or numbers starting with a non-integer)'],
  [{ $and: [{ a: { $bad: 1 } }] }, 'a: unknown operator $bad'],
];

const TEXT = 'Retry the queue worker: HQ-E1042 failed twice.';
const DOC_ROWS: Array<[filter: Record<string, unknown>, text: string | null, want: boolean]> = [
  [{ $contains: 'queue' }, TEXT, true],
  [{ $contains: 'Queue' }, TEXT, false], // case-sensitive
  [{ $not_contains: 'queue' }, TEXT, false],
  [{ $not_contains: 'absent' }, TEXT, true],
  [{ $contains: 'x' }, null, false],
  [{ $not_contains: 'x' }, null, true],
  [{ $regex: 'HQ-E\\d{4}' }, TEXT, true],
  [{ $regex: '^queue' }, TEXT, false],
  [{ $not_regex: '^Retry' }, TEXT, false],
  [{ $regex: '(?i)^retry' }, TEXT, true],
  [{ $regex: '\\bworker\\b' }, TEXT, true],
  [{ $regex: '\\bwork\\b' }, TEXT, false],
  [{ $and: [{ $contains: 'queue' }, { $contains: 'twice' }] }, TEXT, true],
  [{ $and: [{ $contains: 'queue' }, { $contains: 'thrice' }] }, TEXT, false],
  [{ $or: [{ $contains: 'thrice' }, { $regex: 'E10' }] }, TEXT, true],
  [{ $or: [{ $contains: 'thrice' }, { $regex: 'E20' }] }, TEXT, false],
];

const INVALID_DOC: Array<[filter: unknown, message: string]> = [
  [[], 'a whereDocument filter must be an object'],
  [{}, 'whereDocument must not be empty'],
  [{ $contains: 3 }, 'whereDocument $contains needs a string'],
  [{ $not_contains: null }, 'whereDocument $not_contains needs a string'],
  [{ $regex: 'x'.repeat(1001) }, 'whereDocument $regex needs a pattern of at most 1000 characters'],
  [{ $regex: '(?<=a)b' }, "whereDocument $regex: look-around is not supported (Chroma's regex syntax)"],
  [{ $regex: '(a)\\1' }, "whereDocument $regex: a back-reference is not supported (Chroma's regex syntax)"],
  [{ $regex: 'a(?i)b' }, "whereDocument $regex: an inline flag group after the start is not supported (Chroma's regex syntax)"],
  [{ $regex: '(?U)a+' }, 'whereDocument $regex: inline flags (?U) are not supported'],
  [{ $regex: '(' }, 'whereDocument $regex: invalid pattern: Invalid regular expression: /(/u: Unterminated group'],
  [{ $or: [] }, 'whereDocument $or needs a non-empty list of filters'],
  [{ $matches: 'x' }, 'whereDocument: unknown operator $matches'],
];

function rejection(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RagError);
    return { code: (err as RagError).code, message: (err as RagError).message };
  }
  throw new Error('expected a rejection');
}

describe('where filter: evaluation', () => {
  it.each(WHERE_ROWS)('%j on %j -> %s', (filter, meta, want) => {
    expect(compileWhere(filter)(meta)).toBe(want);
  });

  it('undefined and null filters match everything', () => {
    expect(compileWhere(undefined)({})).toBe(true);
    expect(compileWhere(null)(null)).toBe(true);
  });
});

describe('where filter: validation', () => {
  it.each(INVALID_WHERE)('%j is rejected: %s', (filter, message) => {
    expect(rejection(() => compileWhere(filter as Record<string, unknown>))).toEqual({ code: 'RAG_STORE_FILTER_INVALID', message });
  });
});

describe('whereDocument filter: evaluation', () => {
  it.each(DOC_ROWS)('%j on %j -> %s', (filter, text, want) => {
    expect(compileWhereDocument(filter)(text)).toBe(want);
  });
});

describe('whereDocument filter: validation', () => {
  it.each(INVALID_DOC)('%j is rejected: %s', (filter, message) => {
    expect(rejection(() => compileWhereDocument(filter as Record<string, unknown>))).toEqual({ code: 'RAG_STORE_FILTER_INVALID', message });
  });
});

describe('record filter (both parts)', () => {
  it('is null when nothing filters (the fast path)', () => {
    expect(compileRecordFilter(undefined, undefined)).toBeNull();
    expect(compileRecordFilter({}, null)).toBeNull();
  });

  it('needs both parts to hold', () => {
    const f = compileRecordFilter({ lang: 'en' }, { $contains: 'queue' })!;
    expect(f(META, TEXT)).toBe(true);
    expect(f({ lang: 'de' }, TEXT)).toBe(false);
    expect(f(META, 'no match here')).toBe(false);
  });

  it('with one part, ignores the other argument', () => {
    expect(compileRecordFilter({ lang: 'en' }, undefined)!(META, null)).toBe(true);
    expect(compileRecordFilter(undefined, { $contains: 'queue' })!(null, TEXT)).toBe(true);
    expect(compileRecordFilter(undefined, { $contains: 'queue' })!(META, 'nothing')).toBe(false);
  });
});

describe('Rust regex syntax translated to JavaScript (rustRegex)', () => {
  const ROWS: Array<[pattern: string, text: string, want: boolean]> = [
    ['\\d+', '٣', true], // Unicode digits, as Rust's \d
    ['^\\w+$', 'café', true],
    ['^\\w+$', 'a-b', false],
    ['\\pL', 'é', true],
    ['\\p{Lu}', 'Λ', true],
    ['\\p{Lu}', 'λ', false],
    ['[[:digit:]]', '7', true],
    ['[[:digit:]]', 'x', false],
    ['\\Aab', 'ab', true],
    ['\\Aab', 'xab', false],
    ['ab\\z', 'ab', true],
    ['ab\\z', 'abc', false],
    ['(?i)ABC', 'abc', true],
    ['(?:ab)+$', 'abab', true],
    ['(?P<word>\\w+)', 'x', true],
    ['\\x41', 'A', true],
    ['a\\.b', 'a.b', true],
    ['a\\.b', 'axb', false],
  ];
  it.each(ROWS)('/%s/ on %j -> %s', (pattern, text, want) => {
    expect(rustRegex(pattern).test(text)).toBe(want);
  });

  it.each(['\\', '[[:nope:]]', '\\k', '[\\D]', '(?=a)'])('rejects %j with RAG_STORE_FILTER_INVALID', (pattern) => {
    expect(rejection(() => rustRegex(pattern)).code).toBe('RAG_STORE_FILTER_INVALID');
  });
});
