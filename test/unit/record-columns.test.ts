import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildIdTable, columnBuffers, columnRows, copyColumn, encodeTextColumn, IdIndex, TextColumn, TextColumnBuilder, utf8 } from '../../src/store/record-columns.js';

/** Texts of every kind a store can hold: empty, one-byte, two-byte, surrogate pairs, long. */
function texts(n: number): string[] {
  const kinds = ['', 'a', 'plain ascii text', 'café ünïcödé', '日本語のテキスト', 'emoji 🙂 pair 𝄞', 'x'.repeat(500), '\uFEFFa byte order mark first', 'nul \0 inside'];
  return Array.from({ length: n }, (_, i) => `${kinds[i % kinds.length]}${i % 3 === 0 ? '' : ` #${i}`}`);
}

describe('text columns', () => {
  it('give back every row exactly, across segment boundaries (4096 rows a segment)', () => {
    const t = texts(10_000);
    const col = TextColumn.from(t);
    expect(col.length).toBe(t.length);
    for (let i = 0; i < t.length; i++) expect(col.get(i)).toBe(t[i]);
    expect(col.bytes).toBe(t.reduce((n, s) => n + Buffer.byteLength(s), 0));
    expect(col.slice(4094, 4099)).toEqual(t.slice(4094, 4099));
    expect(col.slice(9998, 20_000)).toEqual(t.slice(9998));
  });

  it('start a new segment at the row or byte limit; a row longer than the limit gets a segment of its own; empty rows and an empty column work', () => {
    const t = ['abc', '', 'défgh', 'x'.repeat(25), '', 'ij', 'k', 'lmnopqrstu', ''];
    const data = encodeTextColumn(t, { rows: 3, bytes: 10 });
    expect(data.segments.every((s, i) => s.byteLength <= 10 || data.segmentOf.filter((x) => x === i).length === 1)).toBe(true);
    expect(Math.max(...data.segmentOf)).toBeGreaterThanOrEqual(3);
    const col = new TextColumn(data);
    expect(t.map((_, i) => col.get(i))).toEqual(t);
    expect(t.map((s, i) => col.equalsBytes(i, utf8(s)))).toEqual(t.map(() => true));
    expect(col.equalsBytes(0, utf8('ab'))).toBe(false);
    expect(col.equalsBytes(0, utf8('abd'))).toBe(false);
    const empty = TextColumn.from([]);
    expect(empty.length).toBe(0);
    expect(empty.slice(0, 10)).toEqual([]);
  });

  it('built page by page (the build thread): one segment per page, every row back, arrays cut to the rows added, never more rows than its capacity', () => {
    const t = texts(2_500);
    const b = new TextColumnBuilder(3_000);
    for (let i = 0; i < t.length; i++) {
      b.add(t[i]!);
      if (i % 1000 === 999) b.endPage();
    }
    const data = b.finish();
    expect(data.segments.length).toBe(3); // pages of 1000, 1000 and 500 rows
    expect(data.segmentOf.length).toBe(2_500);
    expect(data.starts.length).toBe(2_500);
    expect(columnRows(data)).toEqual(t);
    // A copy keeps its rows after the original's arrays are transferred (detached).
    const copy = copyColumn(data);
    const moved = structuredClone(data, { transfer: columnBuffers(data) });
    expect(data.segmentOf.length).toBe(0);
    expect(data.segments.every((s) => s.byteLength === 0)).toBe(true); // the texts moved too, not copied
    expect(columnRows(moved)).toEqual(t);
    expect(columnRows(copy)).toEqual(t);
    const full = new TextColumnBuilder(2);
    full.add('a');
    full.add('b');
    expect(() => full.add('c')).toThrow(/built for 2 rows/);
    // The limits still hold inside a page.
    const small = new TextColumnBuilder(5, { rows: 2, bytes: 100 });
    for (const x of ['a', 'b', 'c', 'd', 'é']) small.add(x);
    expect(small.finish().segments.map((b) => Buffer.from(b).toString())).toEqual(['ab', 'cd', 'é']);
  });

  it('reject a column whose arrays disagree', () => {
    expect(() => new TextColumn({ segments: [utf8('ab')], segmentOf: new Uint32Array(2), starts: new Uint32Array(1) })).toThrow(/one start per row/);
    expect(() => new TextColumn({ segments: [utf8('ab')], segmentOf: new Uint32Array([0, 1]), starts: new Uint32Array(2) })).toThrow(/row 1 .*outside/);
    expect(() => new TextColumn({ segments: [utf8('ab')], segmentOf: new Uint32Array(1), starts: new Uint32Array([3]) })).toThrow(/row 0 .*outside/);
  });
});

describe('text columns the build thread checked (the event loop checks their ends only)', () => {
  it('take a column whose last row ends its segments; refuse one with segments missing or to spare, or a last row past its segment', () => {
    const t = texts(5_000);
    const data = encodeTextColumn(t, { rows: 1000, bytes: 1 << 30 });
    const checked = new TextColumn(data, { checked: true });
    expect(columnRows(data)).toEqual(t);
    expect(checked.get(4_999)).toBe(t[4_999]);
    expect(new TextColumn(encodeTextColumn([]), { checked: true }).length).toBe(0);
    const bad = (spoil: (d: typeof data) => void) => {
      const d = { segments: [...data.segments], segmentOf: data.segmentOf.slice(), starts: data.starts.slice() };
      spoil(d);
      return () => new TextColumn(d, { checked: true });
    };
    expect(bad((d) => d.segments.pop())).toThrow(/does not end its/); // a segment lost
    expect(bad((d) => d.segments.push(utf8('extra')))).toThrow(/does not end its/); // one too many
    expect(bad((d) => (d.starts[4_999] = 1e9))).toThrow(/does not end its/);
    // A row in the middle is trusted to the build thread's check (the full check still refuses it).
    const middle = { segments: data.segments, segmentOf: data.segmentOf.slice(), starts: data.starts.slice() };
    middle.segmentOf[10] = 99;
    expect(() => new TextColumn(middle)).toThrow(/row 10/);
  });
});

describe('substring search over a column (whereDocument $contains)', () => {
  const rowsWith = (col: TextColumn, needle: string) => Array.from(col.containing(needle)).flatMap((m, r) => (m ? [r] : []));
  const rowsIncluding = (t: string[], needle: string) => t.flatMap((s, r) => (s.includes(needle) ? [r] : []));

  it('finds the rows a string search finds: within rows, never across two, at row and segment edges, multibyte and empty rows, repeated matches', () => {
    const t = ['abc', '', 'cab', 'ab', 'c', 'aaa', 'xaay', 'aa', 'é', 'café', 'e\u0301', '🙂🙂', '', 'ab'];
    const col = new TextColumn(encodeTextColumn(t, { rows: 4, bytes: 8 }));
    for (const needle of ['ab', 'ca', 'bc', 'abc', 'a', 'aa', 'aaa', 'aaaa', 'é', 'e', 'f', '🙂', '🙂🙂', '\uD83D\uDE42', 'xyz', 'cab' + 'ab', 'c' + 'aaa', '\u0301', 'b']) {
      expect(rowsWith(col, needle), needle).toEqual(rowsIncluding(t, needle));
    }
  });

  it('an empty needle is in every row; a needle with a lone surrogate (not UTF-8) is searched as a string and found nowhere', () => {
    const t = ['a', '', 'b\uFFFDc'];
    const col = TextColumn.from(t);
    expect(rowsWith(col, '')).toEqual([0, 1, 2]);
    // U+FFFD is what a lone surrogate would encode to: a byte search would wrongly match row 2.
    expect(rowsWith(col, '\uD800')).toEqual([]);
    expect(rowsWith(col, '\uFFFD')).toEqual([2]);
    expect(rowsWith(TextColumn.from([]), 'a')).toEqual([]);
  });

  it('agrees with String.includes on random columns and needles (fast-check, fixed seed)', () => {
    const ch = fc.constantFrom('a', 'b', 'ab', 'é', '日', '🙂', ' ', '\u0301');
    const text = fc.array(ch, { maxLength: 12 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(text, { maxLength: 40 }), fc.array(text.filter((n) => n.length > 0), { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 40 }), (t, needles, rows, bytes) => {
        const col = new TextColumn(encodeTextColumn(t, { rows, bytes }));
        for (const n of needles) expect(rowsWith(col, n)).toEqual(rowsIncluding(t, n));
      }),
      { seed: 15, numRuns: 400 },
    );
  });
});

describe('id index', () => {
  it('finds every id, misses what is not there (prefixes, longer ids, other case), and maps a repeated id to its last row', () => {
    const ids = [...texts(5000), 'a', 'ab', 'abc', 'dup', 'Dup', 'dup'];
    const col = TextColumn.from(ids);
    const index = new IdIndex(col, buildIdTable(col));
    const last = new Map<string, number>();
    ids.forEach((id, i) => last.set(id, i));
    for (const [id, row] of last) expect(index.rowOf(id)).toBe(row);
    for (const missing of ['', 'abcd', 'DUP', 'zz', 'plain ascii text #2', `${'x'.repeat(500)} #6`]) {
      if (!last.has(missing)) expect(index.rowOf(missing)).toBe(-1);
    }
    expect(index.rowOf('dup')).toBe(ids.length - 1);
    // By bytes inside a larger buffer (the keyword index's UTF-8 ids), with the same answers.
    const blob = Buffer.from(`<${ids.join('|')}>`);
    let at = 1;
    for (const [i, id] of ids.entries()) {
      const len = Buffer.byteLength(id);
      expect(index.rowOfBytes(blob, at, at + len)).toBe(last.get(id));
      if (i % 100 === 1) expect(index.rowOfBytes(blob, at, at + len + 1)).toBe(-1); // with the separator after it
      at += len + 1;
    }
  });

  it('refuses a table that is not a power of two longer than its column (a lookup must always reach an empty slot)', () => {
    const col = TextColumn.from(['a', 'b', 'c']);
    expect(() => new IdIndex(col, new Int32Array(3).fill(-1))).toThrow(/power of two/);
    expect(() => new IdIndex(col, new Int32Array(2).fill(-1))).toThrow(/power of two/);
    expect(new IdIndex(col, buildIdTable(col)).rowOf('c')).toBe(2);
    const none = TextColumn.from([]);
    expect(new IdIndex(none, buildIdTable(none)).rowOf('a')).toBe(-1);
  });
});
