import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import type MiniSearch from 'minisearch';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { splitSentences } from '../../src/rag/extractive-answerer.js';
import { KeywordIndex } from '../../src/store/keyword-index.js';
import { checkedPostings, compilePostings, copyPostings, KeywordPostings, PostingsBuilder, postingsBuffers, type KeywordPostingsData } from '../../src/store/keyword-postings.js';
import { KEYWORD_ANALYSIS } from '../../src/store/keyword-analysis.js';
import { ROOT } from '../helpers/harness.js';

let seed = 3;
const r = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed / 0x7fffffff);

async function corpus(n: number) {
  const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
  const sentences = documents.flatMap((d) => splitSentences(d.pageContent));
  const pick = () => sentences[Math.floor(r() * sentences.length)]!;
  const docs = Array.from({ length: n }, (_, i) => ({
    id: `d${i}-é`,
    text: `${pick()} ${pick()}`,
    ...(i % 3 === 0 ? { title: pick().slice(0, 40) } : {}),
  }));
  return { docs, sentences, pick };
}

/** Every term's document frequency, by term. */
function dfByTerm(d: KeywordPostingsData): Map<string, number> {
  const dec = new TextDecoder();
  const out = new Map<string, number>();
  for (let t = 0; t + 1 < d.termStart.length; t++) out.set(dec.decode(d.termBytes.subarray(d.termStart[t]!, d.termStart[t + 1]!)), d.df[t]!);
  return out;
}

/**
 * The served keyword search (typed arrays, keyword-postings.ts) must rank as MiniSearch's own
 * search() does on the same index, with the same query pruning (KeywordIndex's query-expansion
 * path is MiniSearch's search with every term weighted 1: the reference here).
 */
describe('keyword postings (the served BM25)', () => {
  it('gives MiniSearch search() ids and scores for 80 questions on a real corpus', async () => {
    const { docs, pick } = await corpus(2000);
    const index = KeywordIndex.build(docs);
    const mini = (index as unknown as { mini: MiniSearch }).mini;
    const postings = new KeywordPostings(index.compile());
    let compared = 0;
    for (let q = 0; q < 80; q++) {
      const question = q % 10 === 0 ? `${pick()} ${pick()} ${pick()}` : pick(); // some with more than 8 terms
      const fast = postings.search(question, 20);
      // Reference: MiniSearch's search over the pruned terms (a weight of 1 each is an ordinary search).
      const slow = index.search(question, 20, [{ word: 'zzzz-not-a-term', weight: 0.5 }]);
      expect(fast.length).toBe(slow.length);
      fast.forEach((h, i) => {
        expect(h.score).toBeCloseTo(slow[i]!.score, 9);
        // Equal scores may come in another order; distinct ones must not.
        const distinct = (j: number) => j < 0 || j >= slow.length || Math.abs(slow[i]!.score - slow[j]!.score) > 1e-9;
        if (distinct(i - 1) && distinct(i + 1)) expect(h.id).toBe(slow[i]!.id);
      });
      compared += fast.length;
    }
    expect(compared).toBeGreaterThan(800);
    // The first search allocates the scratch arrays, later ones reuse them: the same answer twice.
    expect(postings.search('retry backoff worker', 5)).toEqual(postings.search('retry backoff worker', 5));
  });

  it('built document by document without MiniSearch (PostingsBuilder), it ranks and scores exactly as MiniSearch-built, also as read back from a serving index (checkedPostings)', async () => {
    const { docs, pick } = await corpus(2000);
    // Some documents with empty text, with headings, and a boosted headings field, as in eval variants.
    docs[5] = { id: 'empty', text: '' };
    // Neighbours' text counts in no df; headings count in df only when their field is indexed.
    const withHeadings = docs.map((d, i) => ({
      ...d,
      ...(i % 7 === 0 ? { headings: `Guide > Part ${i % 13} > ${pick().slice(0, 30)}` } : {}),
      ...(i % 5 === 0 ? { neighbours: `${pick()} zz-neighbour-only-${i % 4}` } : {}),
    }));
    const boosted = (f: Partial<typeof KEYWORD_ANALYSIS.fieldBoosts>) => ({ ...KEYWORD_ANALYSIS, fieldBoosts: { ...KEYWORD_ANALYSIS.fieldBoosts, ...f } });
    for (const analysis of [KEYWORD_ANALYSIS, boosted({ headings: 2 }), boosted({ headings: 2, neighbours: 0.3 })]) {
      const compiled = KeywordIndex.build(withHeadings, 'built', analysis).compile();
      const reference = new KeywordPostings(compiled);
      const builder = new PostingsBuilder(analysis);
      for (const d of withHeadings) builder.add(d);
      expect(builder.size).toBe(2000);
      const data = builder.finish('built');
      expect(dfByTerm(data)).toEqual(dfByTerm(compiled));
      const lean = new KeywordPostings(data);
      // As decodeIndexCache reads it back: the stored arrays, the term table rebuilt.
      const { table: _table, ...stored } = copyPostings(data);
      const viaFile = new KeywordPostings(checkedPostings(stored));
      expect(lean.size).toBe(reference.size);
      for (let q = 0; q < 80; q++) {
        const question = q % 10 === 0 ? `${pick()} ${pick()}` : pick();
        const want = reference.search(question, 20);
        expect(lean.search(question, 20)).toEqual(want);
        expect(viaFile.search(question, 20)).toEqual(want);
      }
    }
  });

  it('keeps no document text alive while it builds: a long token (a V8 slice of its text) is kept as a copy of its own', () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const filler = 'lorem ipsum dolor sit amet consectetur adipiscing elit '.repeat(36); // ~2 KB a document
    const builder = new PostingsBuilder(KEYWORD_ANALYSIS);
    gc();
    const before = process.memoryUsage().heapUsed;
    // Each document brings one new token of 13+ characters: kept as a slice, it held the whole lower-cased text (~20 MB here).
    for (let i = 0; i < 10_000; i++) builder.add({ id: `d${i}`, text: `${filler} identifier-number-${i.toString(36)}x${i} ${filler}` });
    gc();
    const heldMiB = (process.memoryUsage().heapUsed - before) / 2 ** 20;
    expect(heldMiB).toBeLessThan(8);
    expect(builder.finish('built').documentCount).toBe(10_000);
  });

  it('compiles a shipped index text (no MiniSearch objects) to the same layout as the in-memory index', async () => {
    const { docs } = await corpus(300);
    const index = KeywordIndex.build(docs);
    const fromText = KeywordIndex.compileText(index.serialize(), 'store')!;
    const direct = index.compile();
    expect(fromText.origin).toBe('store');
    for (const key of ['termBytes', 'termStart', 'table', 'df', 'postStart', 'postDoc', 'postTf', 'fieldLength', 'avgFieldLength', 'present', 'idBytes', 'idStart'] as const) {
      expect(Buffer.from(fromText[key].buffer).equals(Buffer.from(direct[key].buffer)), key).toBe(true);
    }
    // Every buffer is its own (transferable without detaching another's).
    const buffers = postingsBuffers(direct);
    expect(new Set(buffers).size).toBe(buffers.length);
    expect(new KeywordPostings(fromText).size).toBe(300);
  });

  it('keeps terms that only have a df, prunes common terms, and finds non-ASCII ids and terms', () => {
    const docs = [
      { id: 'α', text: 'naïve café configuration' },
      { id: 'b', text: 'the visibility timeout of a job' },
      ...Array.from({ length: 20 }, (_, i) => ({ id: `c${i}`, text: `common filler ${i}` })),
    ];
    const index = KeywordIndex.build(docs);
    const p = new KeywordPostings(index.compile());
    expect(p.search('café', 3)[0]?.id).toBe('α');
    expect(p.search('visibility timeouts', 3).map((h) => h.id)).toEqual(['b']);
    // "common" is in 20 of 22 documents (> maxDfRatio): dropped while another term is left...
    expect(p.search('common visibility', 30).map((h) => h.id)).toEqual(['b']);
    // ...kept when nothing else is.
    expect(p.search('common', 30)).toHaveLength(20);
    expect(p.search('', 5)).toEqual([]);
    expect(p.search('nothing-matches-this', 5)).toEqual([]);
    expect(p.search('timeout', 0)).toEqual([]);
  });

  it('refuses a corrupt serialised index with a message saying what is wrong', () => {
    const good = JSON.parse(KeywordIndex.build([{ id: 'a', text: 'hello world' }, { id: 'b', text: 'hello there' }]).serialize()) as {
      index: Record<string, unknown>;
      df: Record<string, unknown>;
      analysis: unknown;
    };
    const analysis = KeywordIndex.build([]).analysis;
    const bad = (mutate: (plain: Record<string, any>, df: Record<string, any>) => void) => {
      const plain = structuredClone(good.index) as Record<string, any>;
      const df = structuredClone(good.df) as Record<string, any>;
      mutate(plain, df);
      return () => compilePostings(plain, df, analysis, 'store');
    };
    expect(bad(() => undefined)).not.toThrow();
    expect(bad((p) => (p.serializationVersion = 1))).toThrow(/serialization/);
    expect(bad((p) => (p.documentCount = -1))).toThrow(/documentCount/);
    expect(bad((p) => (p.documentCount = 5))).toThrow(/documentCount/);
    expect(bad((p) => (p.documentIds = { 0: 'a', 7: 'b' }))).toThrow(/document id/);
    expect(bad((p) => (p.documentIds = { 0: 'a', 1: 2 }))).toThrow(/document id/);
    expect(bad((p) => (p.fieldIds = { text: 0, nope: 1 }))).toThrow(/field/);
    expect(bad((p) => (p.fieldIds = { text: 0, title: 0 }))).toThrow(/field/);
    expect(bad((p) => (p.averageFieldLength = ['x']))).toThrow(/average length/);
    expect(bad((p) => (p.averageFieldLength = [0]))).toThrow(/average length 0/);
    expect(bad((p) => (p.fieldLength = { 0: ['x'] }))).toThrow(/field lengths/);
    expect(bad((p) => (p.fieldLength = { 9: [1] }))).toThrow(/field lengths/);
    expect(bad((p) => (p.index = [['hello', { 0: { 5: 1 } }]]))).toThrow(/postings/);
    expect(bad((p) => (p.index = [['hello', { 0: { 0: -1 } }]]))).toThrow(/postings/);
    expect(bad((p) => (p.index = [['hello', { 9: { 0: 1 } }]]))).toThrow(/postings/);
    expect(bad((p) => (p.index = [['hello', { 0: { 0: 1 } }], ['hello', { 0: { 1: 1 } }]]))).toThrow(/twice/);
    expect(bad((p) => (p.index = [42]))).toThrow(/entry/);
    expect(bad((p) => delete p.index)).toThrow(/missing/);
    expect(bad((_p, df) => (df.hello = 'many'))).toThrow(/df/);
    expect(() => compilePostings(null, {}, analysis, 'store')).toThrow(/not an object/);
    expect(() => KeywordIndex.compileText('{"format":9}', 'store')).toThrow(/unknown format/);
    expect(KeywordIndex.compileText('{"format":2}', 'store')).toBeNull();
  });

  it('serves an index whose MiniSearch discarded a document as MiniSearch does (the id is gone)', () => {
    const index = KeywordIndex.build([
      { id: 'a', text: 'alpha beta' },
      { id: 'b', text: 'alpha gamma' },
    ]);
    const mini = (index as unknown as { mini: MiniSearch }).mini;
    mini.discard('b');
    const p = new KeywordPostings(index.compile());
    expect(p.size).toBe(1);
    expect(p.search('alpha gamma', 5).map((h) => h.id)).toEqual(['a']);
  });
});
