import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CACHED_STRINGS, checkMetadataColumn, encodeMetadataColumn, MetadataColumn, metadataBuffers, type MetadataColumnData } from '../../src/store/metadata-columns.js';
import { compileRowFilter, compileWhere, type WhereFilter } from '../../src/store/where-filter.js';

/** Metadata of every shape a store can hand us, hostile ones included. */
const AWKWARD: Array<Record<string, unknown> | null> = [
  { source: 'a.md', page: 3, score: 0.25, draft: false, final: true, note: null },
  null,
  {},
  { '': 'empty key', 'ключ': 'значение', '日本': '語', emoji: '🙂 𝄞' },
  JSON.parse('{"__proto__": "not a prototype", "constructor": "c", "toString": 1}') as Record<string, unknown>,
  { tags: ['a', 'b'], nested: { x: 1, y: [true, null] } },
  { zero: -0, big: 2 ** 53, small: -1e-300, int: 7, float: 7.5 },
  { source: 'a.md', page: 3 },
  { long: 'x'.repeat(300_000) },
];

/** Records built the way JSON.parse builds them (a `__proto__` key is an own field there). */
function parsed(m: Record<string, unknown> | null): Record<string, unknown> | null {
  return JSON.parse(JSON.stringify(m)) as Record<string, unknown> | null;
}

describe('metadata columns', () => {
  it('give every record back equal to what was stored: fields in order, every value type, null records as {}, __proto__ as a field', () => {
    const metas = AWKWARD.map(parsed);
    const col = MetadataColumn.from(metas);
    expect(col.length).toBe(metas.length);
    for (let r = 0; r < metas.length; r++) {
      const got = col.get(r);
      expect(JSON.stringify(got)).toBe(JSON.stringify(metas[r] ?? {}));
      expect(Object.keys(got)).toEqual(Object.keys(metas[r] ?? {}));
    }
    const proto = col.get(4);
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value).toBe('not a prototype');
    expect(Object.is(MetadataColumn.from([{ zero: -0 }]).get(0).zero, -0)).toBe(true); // (JSON itself cannot carry -0)
    expect(col.get(5)).toEqual({ tags: ['a', 'b'], nested: { x: 1, y: [true, null] } });
    expect(col.slice(7, 100)).toEqual([{ source: 'a.md', page: 3 }, { long: 'x'.repeat(300_000) }]);
    // A field's reader: the value, or undefined where the row lacks it or no row has it.
    const page = col.field('page');
    expect([0, 1, 7].map(page)).toEqual([3, undefined, 3]);
    expect(col.field('nowhere')(0)).toBeUndefined();
    expect(col.field('note')(0)).toBeNull();
    // A repeated string is stored once.
    const data = encodeMetadataColumn(Array.from({ length: 1000 }, (_, i) => ({ source: `s${i % 3}.md` })));
    expect(new MetadataColumn(data).length).toBe(1000);
    expect(data.strings.segmentOf.length).toBe(4); // "source" and three values
  });

  it('survive the trip to the event loop: every buffer transferred (detached here), every row equal', () => {
    const metas = Array.from({ length: 10_000 }, (_, i) => ({ source: `doc-${i % 97}.md`, chunk: i, [`only-${i % 500}`]: i % 2 === 0 }));
    const data = encodeMetadataColumn(metas);
    const moved: MetadataColumnData = structuredClone(data, { transfer: metadataBuffers(data) });
    expect(data.entryValue.byteLength).toBe(0); // transferred, not copied
    expect(data.strings.segments.every((s) => s.byteLength === 0)).toBe(true); // the dictionary's bytes too
    const col = new MetadataColumn(moved, { checked: true });
    for (let r = 0; r < metas.length; r += 7) expect(col.get(r)).toEqual(metas[r]);
    expect(col.bytes).toBeGreaterThan(10_000 * 13);
  });

  it('read strings past the cached ones (CACHED_STRINGS) the same way, values and field names alike', () => {
    const n = CACHED_STRINGS + 2000;
    const metas = Array.from({ length: n }, (_, i) => ({ [`k${i % 7}`]: `value-${i}`, [`field-${i}`]: i }));
    const col = MetadataColumn.from(metas);
    for (const r of [0, 1, CACHED_STRINGS - 1, CACHED_STRINGS, n - 1]) expect(col.get(r)).toEqual(metas[r]);
    const late = compileRowFilter<number>({ [`k${(n - 4) % 7}`]: `value-${n - 4}` }, undefined, (f) => col.field(f), () => '')!;
    expect(metas.map((_, r) => r).filter(late)).toEqual([n - 4]);
    expect(col.field(`field-${n - 1}`)(n - 1)).toBe(n - 1);
  });

  it('refuse a column whose offsets or codes point outside it (checked once, when built)', () => {
    const good = () => encodeMetadataColumn([{ a: 'x', b: 1 }, { a: 'y' }]);
    const cases: Array<[string, (d: MetadataColumnData) => void]> = [
      ['row starts short of the entries', (d) => (d.rowStart = d.rowStart.slice(0, 2))],
      ['a row ending before it starts', (d) => (d.rowStart[1] = 4)],
      ['a key outside the dictionary', (d) => (d.entryKey[0] = 99)],
      ['a string outside the dictionary', (d) => (d.entryValue[0] = 99)],
      ['a fractional string code', (d) => (d.entryValue[0] = 0.5)],
      ['an unknown kind', (d) => (d.entryKind[1] = 9)],
      ['arrays of different lengths', (d) => (d.entryKind = d.entryKind.slice(0, 1))],
    ];
    expect(() => new MetadataColumn(good())).not.toThrow();
    for (const [what, spoil] of cases) {
      const d = good();
      spoil(d);
      expect(() => new MetadataColumn(d), what).toThrow(/metadata column|text column/);
      // The build thread's check (the event loop then takes the column with its lengths checked only).
      expect(() => checkMetadataColumn(d), what).toThrow(/metadata column/);
    }
  });

  it('filter exactly as the objects do: 500 random where filters over random metadata (fixed seed)', () => {
    const value = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, 1.25, -0), fc.constantFrom('a', 'b', '1', 'true', ''), fc.boolean(), fc.constant(null), fc.constant(['a']));
    const fields = ['n', 's', 'b', '__proto__', 'constructor'] as const;
    const meta = fc.option(fc.dictionary(fc.constantFrom(...fields), value, { maxKeys: 4 }), { nil: null });
    const scalar = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, 1.25), fc.constantFrom('a', 'b', '1'), fc.boolean());
    const leaf = fc.tuple(fc.constantFrom(...fields, 'absent'), fc.constantFrom('$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin'), scalar, fc.array(scalar, { minLength: 1, maxLength: 3 }))
      .map(([f, op, s, list]): WhereFilter => ({ [f]: { [op]: op === '$in' || op === '$nin' ? list : op.startsWith('$g') || op.startsWith('$l') ? (typeof s === 'number' ? s : 1) : s } }));
    const where = fc.oneof(leaf, fc.array(leaf, { minLength: 2, maxLength: 3 }).map((xs) => ({ $and: xs })), fc.array(leaf, { minLength: 2, maxLength: 3 }).map((xs) => ({ $or: xs })));
    fc.assert(
      fc.property(fc.array(meta, { minLength: 1, maxLength: 40 }), where, (raw, w) => {
        const metas = raw.map((m) => parsed(m as Record<string, unknown> | null));
        const col = MetadataColumn.from(metas);
        let objects: boolean[];
        try {
          const p = compileWhere(w);
          objects = metas.map((m) => p(m));
        } catch {
          return; // rejected filters are rejected by both (one compiler)
        }
        const byRow = compileRowFilter<number>(w, undefined, (field) => col.field(field), () => '')!;
        expect(metas.map((_, r) => byRow(r)), JSON.stringify({ metas, w })).toEqual(objects);
      }),
      { numRuns: 500, seed: 14 },
    );
  });
});
