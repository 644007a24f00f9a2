import { describe, expect, it } from 'vitest';
import { buildIdTable, columnRows, copyColumn, encodeTextColumn, IdIndex, TextColumn, TextColumnBuilder } from '../../src/store/record-columns.js';

/** Texts of every kind a store can hold: empty, one-byte, two-byte, surrogate pairs, long. */
function texts(n: number): string[] {
  const kinds = ['', 'a', 'plain ascii text', 'café ünïcödé', '日本語のテキスト', 'emoji 🙂 pair 𝄞', 'x'.repeat(500)];
  return Array.from({ length: n }, (_, i) => `${kinds[i % kinds.length]}${i % 3 === 0 ? '' : ` #${i}`}`);
}

describe('text columns', () => {
  it('give back every row exactly, across segment boundaries (4096 rows a segment)', () => {
    const t = texts(10_000);
    const col = TextColumn.from(t);
    expect(col.length).toBe(t.length);
    for (let i = 0; i < t.length; i++) expect(col.get(i)).toBe(t[i]);
    expect(col.chars).toBe(t.reduce((n, s) => n + s.length, 0));
    expect(col.slice(4094, 4099)).toEqual(t.slice(4094, 4099));
    expect(col.slice(9998, 20_000)).toEqual(t.slice(9998));
  });

  it('start a new segment at the row or character limit; a row longer than the limit gets a segment of its own; empty rows and an empty column work', () => {
    const t = ['abc', '', 'defgh', 'x'.repeat(25), '', 'ij', 'k', 'lmnopqrstu', ''];
    const data = encodeTextColumn(t, { rows: 3, chars: 10 });
    expect(data.segments.every((s, i) => s.length <= 10 || data.segmentOf.filter((x) => x === i).length === 1)).toBe(true);
    expect(Math.max(...data.segmentOf)).toBeGreaterThanOrEqual(3);
    const col = new TextColumn(data);
    expect(t.map((_, i) => col.get(i))).toEqual(t);
    expect(t.map((s, i) => col.equals(i, s))).toEqual(t.map(() => true));
    expect(col.equals(0, 'ab')).toBe(false);
    expect(col.equals(0, 'abd')).toBe(false);
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
    structuredClone(data, { transfer: [data.segmentOf.buffer as ArrayBuffer, data.starts.buffer as ArrayBuffer] });
    expect(data.segmentOf.length).toBe(0);
    expect(columnRows(copy)).toEqual(t);
    const full = new TextColumnBuilder(2);
    full.add('a');
    full.add('b');
    expect(() => full.add('c')).toThrow(/built for 2 rows/);
    // The limits still hold inside a page.
    const small = new TextColumnBuilder(5, { rows: 2, chars: 100 });
    for (const x of ['a', 'b', 'c', 'd', 'e']) small.add(x);
    expect(small.finish().segments).toEqual(['ab', 'cd', 'e']);
  });

  it('reject a column whose arrays disagree', () => {
    expect(() => new TextColumn({ segments: ['ab'], segmentOf: new Uint32Array(2), starts: new Uint32Array(1) })).toThrow(/one start per row/);
  });
});

describe('text columns the build thread checked (the event loop checks their ends only)', () => {
  it('take a column whose last row ends its segments; refuse one with segments missing or to spare, or a last row past its segment', () => {
    const t = texts(5_000);
    const data = encodeTextColumn(t, { rows: 1000, chars: 1 << 30 });
    const checked = new TextColumn(data, { checked: true });
    expect(columnRows(data)).toEqual(t);
    expect(checked.get(4_999)).toBe(t[4_999]);
    expect(new TextColumn(encodeTextColumn([]), { checked: true }).length).toBe(0);
    const bad = (spoil: (d: typeof data) => void) => {
      const d = { segments: [...data.segments], segmentOf: data.segmentOf.slice(), starts: data.starts.slice() };
      spoil(d);
      return () => new TextColumn(d, { checked: true });
    };
    expect(bad((d) => d.segments.pop())).toThrow(/does not end its/); // a segments message lost
    expect(bad((d) => d.segments.push('extra'))).toThrow(/does not end its/); // one too many
    expect(bad((d) => (d.starts[4_999] = 1e9))).toThrow(/does not end its/);
    // A row in the middle is trusted to the build thread's check (the full check still refuses it).
    const middle = { segments: data.segments, segmentOf: data.segmentOf.slice(), starts: data.starts.slice() };
    middle.segmentOf[10] = 99;
    expect(() => new TextColumn(middle)).toThrow(/row 10/);
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
