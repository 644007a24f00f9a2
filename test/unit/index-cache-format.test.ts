import { describe, expect, it } from 'vitest';
import { decodeBundle, encodeBundle, type BundleArray } from '../../src/store/array-bundle.js';
import { decodeIndexCache, encodeIndexCache, IndexCacheInvalid, type CachedIndex, type IndexCacheKey } from '../../src/store/index-cache.js';
import { KEYWORD_ANALYSIS } from '../../src/store/keyword-analysis.js';
import { KeywordPostings, PostingsBuilder } from '../../src/store/keyword-postings.js';
import { encodeMetadataColumn, MetadataColumn } from '../../src/store/metadata-columns.js';
import { columnRows, encodeTextColumn } from '../../src/store/record-columns.js';

/**
 * The serving index file (format 2: an array bundle of what the build thread sends). A load must
 * give back exactly what was written, and a file that is hostile (every checksum right, written by
 * someone who knows the format) must be refused with its reason, never served, never able to make
 * a lookup loop or read out of range. One row per way to lie.
 */
const key: IndexCacheKey = { id: 'k', text: '{"store":"v1"}' };
const N = 300;
const DIM = 4;
const words = ['retry', 'backoff', 'worker', 'queue', 'latency', 'swap', 'índice', 'chunk', 'vector', 'filter'];
const texts = Array.from({ length: N }, (_, i) => `${words[i % 10]} ${words[(i * 7) % 10]} record ${i} ${i % 3 === 0 ? 'HQ_RETENTION_HOURS' : ''}`);
const ids = Array.from({ length: N }, (_, i) => (i === 7 ? 'ünïcode-7' : `doc-${i}`));
const metadatas = Array.from({ length: N }, (_, i) => ({ source: `file-${i % 9}.md`, chunk: i, draft: i % 2 === 0, note: i % 5 === 0 ? null : 'x', tags: i % 4 === 0 ? ['a', 'b'] : 'plain' }));

function fixture(): CachedIndex {
  const builder = new PostingsBuilder(KEYWORD_ANALYSIS);
  texts.forEach((text, i) => builder.add(i % 4 === 0 ? { id: ids[i]!, text, title: `Title ${i % 6}` } : { id: ids[i]!, text }));
  const postings = builder.finish('built');
  const vectors = Float32Array.from({ length: N * DIM }, (_, j) => Math.sin(j + 1));
  return { version: 'v1', collection: 'docs', space: 'cosine', count: N, dimension: DIM, keyword: { origin: 'built', size: postings.documentCount }, ids: encodeTextColumn(ids), documents: encodeTextColumn(texts), metadata: encodeMetadataColumn(metadatas), vectors, postings };
}
const bytes = (index: CachedIndex) => Buffer.concat(encodeIndexCache(key, index));

/** A well-formed file whose content was changed before it was written (all checksums right). */
function crafted(mutate: (index: CachedIndex) => void): Buffer {
  const index = decodeIndexCache(bytes(fixture()), key);
  mutate(index);
  return bytes(index);
}
const refused = (buf: Uint8Array, why: RegExp) => {
  expect(() => decodeIndexCache(buf, key)).toThrow(IndexCacheInvalid);
  expect(() => decodeIndexCache(buf, key)).toThrow(why);
};
/** The file's header and arrays, changed by `edit`, written again as a bundle (checksum right). */
function rebundled(edit: (arrays: Array<[string, BundleArray]>, meta: Record<string, unknown>) => void): Buffer {
  const buf = bytes(fixture());
  const magic = buf.toString('latin1', 0, 8);
  const { meta, arrays } = decodeBundle(buf, magic);
  const list = [...arrays];
  edit(list, meta as Record<string, unknown>);
  return Buffer.concat(encodeBundle(magic, meta, list));
}

describe('serving index file (format 2)', () => {
  it('reads back exactly what was written: ids, texts, metadata, vectors and a keyword index that answers the same', () => {
    const index = fixture();
    const back = decodeIndexCache(bytes(index), key);
    expect(back).toMatchObject({ version: 'v1', collection: 'docs', space: 'cosine', count: N, dimension: DIM, keyword: index.keyword });
    expect(columnRows(back.ids)).toEqual(ids);
    expect(columnRows(back.documents)).toEqual(texts);
    const meta = new MetadataColumn(back.metadata);
    for (let i = 0; i < N; i++) expect(meta.get(i)).toEqual(metadatas[i]);
    expect(Array.from(back.vectors)).toEqual(Array.from(index.vectors));
    // Rebuilt, not read: the same table the builder made.
    expect(Array.from(back.postings.table)).toEqual(Array.from(index.postings.table));
    expect(Array.from(back.metadata.stringTable)).toEqual(Array.from(index.metadata.stringTable));
    const want = new KeywordPostings(index.postings);
    const got = new KeywordPostings(back.postings);
    for (const q of ['retry worker', 'índice', 'HQ_RETENTION_HOURS', 'title 3', 'record 17', 'absent-term']) expect(got.search(q, 10)).toEqual(want.search(q, 10));
    // Each array in a buffer of its own: the build thread transfers them one by one.
    expect(back.ids.starts.buffer).not.toBe(back.ids.segmentOf.buffer);
    expect(back.postings.postDoc.byteOffset).toBe(0);
  });

  it.each([
    ['a posting of a document number past the last', (x: CachedIndex) => (x.postings.postDoc[0] = x.postings.present.length), /posting of a document it does not hold/],
    ['term offsets out of order', (x: CachedIndex) => ([x.postings.termStart[1], x.postings.termStart[2]] = [x.postings.termStart[2]!, x.postings.termStart[1]!]), /term offsets out of order/],
    ['a document neither present nor absent', (x: CachedIndex) => (x.postings.present[0] = 2), /neither present nor absent/],
    ['a document count that does not match', (x: CachedIndex) => (x.postings.documentCount += 1), /holds 300 documents, it says 301/],
    ['a term frequency that is NaN', (x: CachedIndex) => (x.postings.postTf[0] = NaN), /invalid term frequency/],
    ['postings in a field of average length 0', (x: CachedIndex) => (x.postings.avgFieldLength[0] = 0), /average length 0/],
    ['a negative field length', (x: CachedIndex) => (x.postings.fieldLength[3] = -1), /invalid field length/],
    ['a document frequency above the document count', (x: CachedIndex) => (x.postings.df[0] = 10_000), /document frequency above/],
    ['posting ranges that do not cover the postings', (x: CachedIndex) => (x.postings.postStart[x.postings.postStart.length - 1] = 1), /posting ranges/],
    ['invalid analysis settings', (x: CachedIndex) => (x.postings.analysis = { ...x.postings.analysis, maxDfRatio: 2 }), /analysis settings/],
    ['a metadata entry naming a field past the dictionary', (x: CachedIndex) => (x.metadata.entryKey[0] = 1_000_000), /metadata.*entry 0/],
    ['a metadata string value past the dictionary', (x: CachedIndex) => (x.metadata.entryValue[0] = 1e9), /metadata/],
    ['a metadata dictionary holding one string twice', (x: CachedIndex) => (x.metadata.strings = encodeTextColumn(['source', 'source', ...columnRows(x.metadata.strings).slice(2)])), /hold the same text/],
    ['an id pointing outside its segment', (x: CachedIndex) => (x.ids.starts[5] = 1e9), /column ids: row 5/],
    ['a text pointing at a segment that does not exist', (x: CachedIndex) => (x.documents.segmentOf[9] = 7), /column documents: row 9/],
    ['one vector too few', (x: CachedIndex) => (x.vectors = x.vectors.slice(1)), /array vectors holds 1199 values, expected 1200/],
    ['ids for fewer rows than the count', (x: CachedIndex) => (x.ids = encodeTextColumn(ids.slice(1))), /array ids.segmentOf holds 299 values, expected 300/],
  ])('refuses a file with %s', (_name, mutate, why) => {
    refused(crafted(mutate), why);
  });

  it('refuses a keyword index that lists a term twice (a lookup would find one of them)', () => {
    refused(
      crafted((x) => {
        const p = x.postings;
        const dec = new TextDecoder();
        const terms = Array.from({ length: p.termStart.length - 1 }, (_, t) => dec.decode(p.termBytes.subarray(p.termStart[t], p.termStart[t + 1])));
        terms[1] = terms[0]!;
        const enc = terms.map((t) => new TextEncoder().encode(t));
        p.termStart = new Uint32Array(terms.length + 1);
        enc.forEach((b, i) => (p.termStart[i + 1] = p.termStart[i]! + b.length));
        p.termBytes = new Uint8Array(p.termStart[terms.length]!);
        enc.forEach((b, i) => p.termBytes.set(b, p.termStart[i]));
      }),
      /lists a term twice/,
    );
  });

  it.each([
    ['an array it does not describe', (a: Array<[string, BundleArray]>) => a.push(['extra', new Uint8Array(3)]), /1 arrays it does not describe/],
    ['a missing array', (a: Array<[string, BundleArray]>) => a.splice(a.findIndex(([n]) => n === 'postings.df'), 1), /array postings.df is missing/],
    ['an array of another type', (a: Array<[string, BundleArray]>) => (a.find((e) => e[0] === 'postings.postDoc')![1] = new Float32Array(4)), /array postings.postDoc is missing or of another type/],
    ['another format', (_a: Array<[string, BundleArray]>, m: Record<string, unknown>) => (m.format = 1), /format 1, expected 2/],
    ['another byte order', (_a: Array<[string, BundleArray]>, m: Record<string, unknown>) => (m.endianness = 'BE'), /written on a BE host/],
    ['an unknown distance space', (_a: Array<[string, BundleArray]>, m: Record<string, unknown>) => (m.space = 'hamming'), /unknown distance space/],
    ['text columns it does not describe', (_a: Array<[string, BundleArray]>, m: Record<string, unknown>) => (m.segments = null), /text columns are not described/],
  ])('refuses a bundle with %s', (_name, edit, why) => {
    refused(rebundled(edit), why);
  });

  it('refuses what is not a well-formed file: truncated, padded, bit-flipped, foreign, another key, a lying header', () => {
    const good = bytes(fixture());
    refused(good.subarray(0, good.length - 9), /truncated/);
    refused(Buffer.concat([good, Buffer.alloc(8)]), /truncated or padded/);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 100]! ^= 1;
    refused(flipped, /payload does not match its sha256 \(corrupt\)/);
    refused(Buffer.from('RAGIDXC1 an entry of the old format'), /bad magic/);
    refused(Buffer.alloc(0), /bad magic/);
    expect(() => decodeIndexCache(good, { id: 'k', text: '{"store":"v2"}' })).toThrow(/written for another store version/);
    // A header that claims an array of 2^40 values: refused before anything is allocated.
    const hlen = good.readUInt32LE(8);
    const header = JSON.parse(good.toString('utf8', 12, 12 + hlen)) as { arrays: Array<[string, string, number]> };
    header.arrays[0]![2] = 2 ** 40;
    const h = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(Math.ceil((12 + h.length) / 8) * 8);
    good.copy(prefix, 0, 0, 8);
    prefix.writeUInt32LE(h.length, 8);
    h.copy(prefix, 12);
    refused(Buffer.concat([prefix, good.subarray(Math.ceil((12 + hlen) / 8) * 8)]), /runs past the payload/);
    const notJson = Buffer.from(good);
    notJson.write('}', 12);
    refused(notJson, /header is not valid JSON/);
  });
});
