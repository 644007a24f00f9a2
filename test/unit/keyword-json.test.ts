import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { splitSentences } from '../../src/rag/extractive-answerer.js';
import { EntryScan, LazyJsonArray, parseKeywordJson } from '../../src/store/keyword-json.js';
import { KeywordIndex, parseAnalysis } from '../../src/store/keyword-index.js';
import { compilePostings, compilePostingsInSlices, type KeywordPostingsData } from '../../src/store/keyword-postings.js';
import { ROOT } from '../helpers/harness.js';
import { ticksDuring } from '../helpers/ticks.js';

/**
 * A shipped keyword-index.json is read lazily (keyword-json.ts): what it compiles to, and what it
 * refuses, must be exactly what `JSON.parse` of the whole text gave (the reference below is the
 * code compileText ran before).
 */
function reference(text: string): KeywordPostingsData | null {
  const parsed = JSON.parse(text) as { format?: number; index?: unknown; df?: unknown; analysis?: unknown };
  if (parsed.format === 2) return null;
  if (parsed.format !== 3 || !parsed.index || !parsed.df) throw new Error(`unknown format ${String(parsed.format)}`);
  return compilePostings(parsed.index, parsed.df, parseAnalysis(parsed.analysis), 'store');
}

type Outcome = { ok: true; value: KeywordPostingsData | null } | { ok: false };
const outcome = (f: () => KeywordPostingsData | null): Outcome => {
  try {
    return { ok: true, value: f() };
  } catch {
    return { ok: false };
  }
};

const ARRAYS = ['termBytes', 'termStart', 'table', 'df', 'postStart', 'postDoc', 'postTf', 'fieldLength', 'avgFieldLength', 'present', 'idBytes', 'idStart'] as const;

function expectSame(text: string, label: string): Outcome {
  const want = outcome(() => reference(text));
  const got = outcome(() => KeywordIndex.compileText(text, 'store'));
  expect(got.ok, `${label}: ${want.ok ? 'accepted' : 'refused'} by JSON.parse whole`).toBe(want.ok);
  if (want.ok && got.ok) {
    expect(got.value === null, label).toBe(want.value === null);
    if (want.value && got.value) {
      expect(got.value.documentCount, label).toBe(want.value.documentCount);
      expect(got.value.analysis, label).toEqual(want.value.analysis);
      for (const k of ARRAYS) expect(Buffer.from(got.value[k].buffer, got.value[k].byteOffset, got.value[k].byteLength).equals(Buffer.from(want.value[k].buffer, want.value[k].byteOffset, want.value[k].byteLength)), `${label}: ${k}`).toBe(true);
    }
  }
  return want;
}

async function shippedText(n: number): Promise<string> {
  const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
  const sentences = documents.flatMap((d) => splitSentences(d.pageContent));
  let seed = 11;
  const r = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed / 0x7fffffff);
  const pick = () => sentences[Math.floor(r() * sentences.length)]!;
  const docs = Array.from({ length: n }, (_, i) => ({ id: i % 4 === 1 ? `d${i}"q\\${i}` : `d${i}-é`, text: `${pick()} ${pick()} ${i % 7} 10${i % 5}`, ...(i % 3 === 0 ? { title: pick().slice(0, 40) } : {}) }));
  return KeywordIndex.build(docs).serialize();
}

describe('keyword-index.json read lazily', () => {
  it('gives what JSON.parse of the whole text gives, with the postings array read one entry at a time', async () => {
    const text = await shippedText(200);
    const lazy = parseKeywordJson(text) as { index: { index: unknown }; df: unknown };
    const whole = JSON.parse(text) as { index: { index: unknown[] }; df: unknown };
    expect(lazy.index.index).toBeInstanceOf(LazyJsonArray);
    const entries = lazy.index.index as LazyJsonArray;
    expect(entries.length).toBe(whole.index.index.length);
    for (let t = 0; t < entries.length; t++) expect(entries.at(t)).toEqual(whole.index.index[t]);
    // Everything else as JSON.parse has it, key order included (digit terms of df come first).
    expect(Object.keys(lazy.df as object)).toEqual(Object.keys(whole.df as object));
    expect({ ...lazy, index: { ...lazy.index, index: null } }).toEqual({ ...whole, index: { ...whole.index, index: null } });
    expect(expectSame(text, 'as serialised').ok).toBe(true);
    // Whitespace JSON allows anywhere between tokens.
    expect(expectSame(JSON.stringify(JSON.parse(text), null, '\t'), 'pretty-printed').ok).toBe(true);
    expect(expectSame(` \r\n${text}\n `, 'padded').ok).toBe(true);
  });

  it('keeps JSON.parse semantics for duplicate keys and odd shapes', async () => {
    const text = await shippedText(20);
    const whole = JSON.parse(text) as Record<string, any>;
    const inner = JSON.stringify(whole.index).slice(1, -1);
    const rows: Array<[string, string]> = [
      // A duplicate key: the last one's value at the first one's place, for the top object, MiniSearch's and its index.
      ['duplicate top index (first broken)', `{"format":3,"index":{"serializationVersion":9},"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":${JSON.stringify(whole.index)}}`],
      ['duplicate top index (last broken)', `{"format":3,"index":${JSON.stringify(whole.index)},"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":{"serializationVersion":9}}`],
      ['duplicate inner index (first an array of junk)', `{"format":3,"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":{"index":[1,2,3],${inner}}}`],
      ['duplicate inner index (last an object)', `{"format":3,"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":{${inner},"index":{}}}`],
      ['duplicate df term', `{"format":3,"analysis":${JSON.stringify(whole.analysis)},"index":${JSON.stringify(whole.index)},"df":${JSON.stringify(whole.df).slice(0, -1)},"0":"x","0":3}}`],
      ['__proto__ member', `{"__proto__":{"format":2},"format":3,"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":${JSON.stringify(whole.index)}}`],
      // JSON.parse makes "__proto__" an own property; an assignment would set the prototype (and df would be inherited).
      ['__proto__ holding the only df', `{"__proto__":{"df":${JSON.stringify(whole.df)}},"format":3,"analysis":${JSON.stringify(whole.analysis)},"index":${JSON.stringify(whole.index)}}`],
      ['escaped key', `{"form\\u0061t":3,"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":${JSON.stringify(whole.index)}}`],
      ['index not an object', `{"format":3,"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":[1]}`],
      ['inner index not an array', `{"format":3,"analysis":${JSON.stringify(whole.analysis)},"df":${JSON.stringify(whole.df)},"index":{${inner.replace('"index":[', '"index":{"a":[').replace(/\]\],"serializationVersion"/, ']]},"serializationVersion"')}}}`],
      ['format 2 with a broken tail', '{"format":2,"index":{"index":[[}]}}'],
      ['format 2', '{"format":2}'],
      ['an array', '[1,2]'],
      ['a number', '3'],
      ['null', 'null'],
      ['empty', ''],
      ['a BOM first', `\uFEFF${text}`],
      ['text after the end', `${text} x`],
      ['two objects', `${text}{}`],
      ['empty postings array', `{"format":3,"analysis":${JSON.stringify(whole.analysis)},"df":{},"index":${JSON.stringify({ ...whole.index, index: [] })}}`],
    ];
    const accepted = rows.filter(([label, t]) => expectSame(t, label).ok).map(([label]) => label);
    // The rows are not all refusals: the test would pass for a reader that refuses everything odd.
    expect(accepted).toEqual(expect.arrayContaining(['duplicate top index (first broken)', 'duplicate inner index (first an array of junk)', 'duplicate df term', '__proto__ member', 'escaped key', 'format 2', 'empty postings array']));
  });

  it("reads MiniSearch's own entries without JSON.parse (scan), each to what JSON.parse gives", async () => {
    const text = await shippedText(200);
    const entries = (parseKeywordJson(text) as { index: { index: LazyJsonArray } }).index.index;
    const whole = (JSON.parse(text) as { index: { index: Array<[string, Record<string, Record<string, number>>]> } }).index.index;
    const out = new EntryScan();
    let postings = 0;
    for (let t = 0; t < entries.length; t++) {
      expect(entries.scan(t, out), `entry ${t}`).toBe(true);
      const [term, fields] = whole[t]!;
      expect(out.term).toBe(term);
      const got: Record<string, Record<string, number>> = {};
      for (let f = 0; f < out.fields; f++) {
        const docs: Record<string, number> = (got[String(out.fieldKey[f])] = {});
        for (let j = out.fieldFrom[f]!; j < out.fieldTo[f]!; j++, postings++) docs[String(out.doc[j])] = out.tf[j]!;
      }
      expect(got).toEqual(fields);
    }
    expect(postings).toBeGreaterThan(2000);
  });

  it('leaves every other form of an entry to JSON.parse, valid or not, and compiles it to the same arrays (or refuses it) as JSON.parse whole', async () => {
    const text = await shippedText(20);
    const whole = JSON.parse(text) as { index: { index: Array<[string, Record<string, Record<string, number>>]> } };
    // An entry holding documents 1, 3 and 5 in field 0 (the text field), swapped in for the first one.
    const [term] = whole.index.index[0]!;
    const original = JSON.stringify(whole.index.index[0]);
    expect(text.includes(original)).toBe(true);
    const t = JSON.stringify(term);
    // The term with its first character written as a \\u escape (the same string to JSON.parse).
    const escapedTerm = `"\\u${term.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(term).slice(2)}`;
    const rows: Array<[label: string, entry: string, scanned: boolean, accepted: boolean]> = [
      ['canonical', `[${t},{"0":{"1":1,"3":2,"5":1}}]`, true, true],
      ['no fields', `[${t},{}]`, true, true],
      ['a field with no documents', `[${t},{"0":{}}]`, true, true],
      ['a field the index does not have', `[${t},{"0":{"1":1},"7":{"1":1}}]`, true, false],
      ['a document beyond nextId', `[${t},{"0":{"1":1,"999999999":1}}]`, true, false],
      ['the term of another entry', `[${JSON.stringify(whole.index.index[1]![0])},{"0":{"1":1}}]`, true, false],
      ['whitespace', `[ ${t} , {"0" : {"1": 1}} ]`, false, true],
      ['documents out of order', `[${t},{"0":{"5":1,"1":1,"3":2}}]`, false, true],
      ['a document twice (the last wins)', `[${t},{"0":{"1":1,"3":2,"1":4}}]`, false, true],
      ['fields out of order', `[${t},{"1":{"1":1},"0":{"3":1}}]`, false, true],
      ['a field twice', `[${t},{"0":{"1":1},"0":{"3":1}}]`, false, true],
      ['tf 1.0', `[${t},{"0":{"1":1.0}}]`, false, true],
      ['tf 1e0', `[${t},{"0":{"1":1e0}}]`, false, true],
      ['tf 2.5', `[${t},{"0":{"1":2.5}}]`, false, true],
      ['tf of 10 digits', `[${t},{"0":{"1":1000000000}}]`, false, true],
      ['tf 0', `[${t},{"0":{"1":0}}]`, false, false],
      ['tf -1', `[${t},{"0":{"1":-1}}]`, false, false],
      ['tf a string', `[${t},{"0":{"1":"1"}}]`, false, false],
      ['a document key 01', `[${t},{"0":{"01":1}}]`, false, false],
      ['a document key of 10 digits', `[${t},{"0":{"1000000000":1}}]`, false, false],
      ['an escaped term', `[${escapedTerm},{"0":{"1":1}}]`, false, true],
      ['a raw control character in the term', `["a${String.fromCharCode(1)}",{"0":{"1":1}}]`, false, false],
      ['a third element', `[${t},{"0":{"1":1}},1]`, false, false],
      ['postings not an object', `[${t},[1]]`, false, false],
      ['17 fields', `[${t},{${Array.from({ length: 17 }, (_, f) => `"${f}":{}`).join(',')}}]`, false, false],
    ];
    const out = new EntryScan();
    for (const [label, entry, scanned, accepted] of rows) {
      const variant = text.replace(original, entry);
      let lazy: LazyJsonArray | null = null;
      try {
        lazy = (parseKeywordJson(variant) as { index: { index: LazyJsonArray } }).index.index;
      } catch {
        // not JSON: refused before any entry is read
      }
      expect(lazy?.scan(0, out) ?? false, `${label}: read by scan`).toBe(scanned);
      expect(expectSame(variant, label).ok, `${label}: accepted`).toBe(accepted);
    }
  });

  it('refuses exactly what JSON.parse refuses, and accepts the same values, over 3,000 random edits of a real index', async () => {
    const compact = await shippedText(12);
    // Half the edits on the text pretty-printed: whitespace between every token.
    const pretty = JSON.stringify(JSON.parse(compact), null, 1);
    let seed = 5;
    const r = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), Math.floor((seed / 0x7fffffff) * n));
    const alphabet = ['{', '}', '[', ']', '"', ',', ':', ' ', '\\', '0', '1', '9', '-', '.', 'e', 'a', 'x', 'n', 'u', 'l', 't', '\n', '"index"', '[[', ']]', '{}', '[]', '"\\"'];
    // Positions are drawn in the postings array as often as elsewhere: it is the part read lazily.
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const text = i % 2 ? pretty : compact;
      const entriesAt = text.search(/"index": ?\[/);
      let t = text;
      for (let e = 0, edits = 1 + r(3); e < edits; e++) {
        const at = r(2) ? entriesAt + r(t.length - entriesAt) : r(t.length);
        const op = r(3);
        const s = alphabet[r(alphabet.length)]!;
        if (op === 0) t = t.slice(0, at) + t.slice(at + 1 + r(3));
        else if (op === 1) t = t.slice(0, at) + s + t.slice(at);
        else t = t.slice(0, at) + s + t.slice(at + s.length);
      }
      if (expectSame(t, `edit ${i}`).ok) accepted++;
    }
    // Some edits keep the text valid (a digit for a digit, a space): both readers must agree on those too.
    expect(accepted).toBeGreaterThan(30);
  });

  it('holds no object graph of the postings: the value kept before compiling takes under half the heap of JSON.parse whole', async () => {
    const text = await shippedText(3000);
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // The largest heap either reader holds at once: the parsed value it keeps before compiling.
    gc();
    const base = process.memoryUsage().heapUsed;
    const whole = JSON.parse(text) as unknown;
    const wholeMiB = (process.memoryUsage().heapUsed - base) / 2 ** 20;
    void whole;
    gc();
    const base2 = process.memoryUsage().heapUsed;
    const lazy = parseKeywordJson(text);
    const lazyMiB = (process.memoryUsage().heapUsed - base2) / 2 ** 20;
    void lazy;
    expect(lazyMiB).toBeLessThan(wholeMiB / 2);
    // And it compiles to the same arrays (over 1,024 terms: the entry bounds grow).
    expect((lazy as { index: { index: LazyJsonArray } }).index.index.length).toBeGreaterThan(1024);
    expect(expectSame(text, '3,000 documents').ok).toBe(true);
  });

  it('compiles in slices (the build thread reads pages between them) to the same arrays, and rejects what the whole compile throws', async () => {
    const text = await shippedText(600);
    const whole = KeywordIndex.compileText(text, 'store')!;
    // Slices of 0 ms: with the default 4 ms a compile this small may end within one slice (the row failed 2 of 8
    // runs so), and whether it yields must not depend on the machine's speed.
    const sliced = KeywordIndex.compileTextInSlices(text, 'store', 0)!;
    // Other work gets the thread while it runs: callbacks queued after it started run before it ends.
    const { value: got, ticks: ranBetween } = await ticksDuring(() => sliced.compile());
    expect(ranBetween).toBeGreaterThan(0);
    for (const k of ARRAYS) expect(Buffer.from(got[k].buffer, got[k].byteOffset, got[k].byteLength).equals(Buffer.from(whole[k].buffer, whole[k].byteOffset, whole[k].byteLength)), k).toBe(true);
    // With no time slice at all it yields every 128 entries.
    const parsed = JSON.parse(text) as { index: { index: unknown[] }; df: unknown; analysis: unknown };
    const { ticks: yields } = await ticksDuring(() => compilePostingsInSlices(parsed.index, parsed.df, parseAnalysis(parsed.analysis), 'store', 0));
    expect(yields).toBeGreaterThanOrEqual(Math.floor(parsed.index.index.length / 128) - 1);
    // A bad posting deep in the index: the same error, as a rejection.
    const bad = JSON.parse(text) as { index: { index: Array<[string, Record<string, Record<string, number>>]> } };
    const entry = bad.index.index[bad.index.index.length - 3]!;
    entry[1][Object.keys(entry[1])[0]!]!['0'] = -1;
    const badText = JSON.stringify(bad);
    expect(() => KeywordIndex.compileText(badText, 'store')).toThrow(/postings of .* are invalid/);
    await expect(KeywordIndex.compileTextInSlices(badText, 'store')!.compile()).rejects.toThrow(/postings of .* are invalid/);
    // A text that is not JSON, or of another format, is refused before any compile; format 2 is null.
    expect(() => KeywordIndex.compileTextInSlices('{"format":3,', 'store')).toThrow();
    expect(() => KeywordIndex.compileTextInSlices('{"format":9}', 'store')).toThrow(/unknown format/);
    expect(KeywordIndex.compileTextInSlices('{"format":2}', 'store')).toBeNull();
  });
});
