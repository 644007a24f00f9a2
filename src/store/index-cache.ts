import { mkdir, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { sha256Hex, sourceTag } from '../fs/fingerprint.js';
import { pruneCacheDir, writeCacheEntry } from '../fs/cache-entry.js';
import { freeBytes } from '../fs/safe-fs.js';
import type { StoreSpec } from './layout.js';
import { BundleInvalid, decodeBundle, encodeBundle, type BundleArray } from './array-bundle.js';
import { parseAnalysis } from './keyword-index.js';
import { checkedPostings, POSTINGS_TYPES, STORED_POSTINGS_ARRAYS, type KeywordPostingsData, type StoredPostingsArrays } from './keyword-postings.js';
import { checkMetadataColumn, type MetadataColumnData } from './metadata-columns.js';
import { buildIdTable, checkTextColumn, TextColumn, type TextColumnData } from './record-columns.js';

/**
 * The serving index cache: what reading a verified store version into process memory produced
 * (ids, texts, metadata, the vectors, the keyword index), kept in RUNTIME_DIR/index-cache so a
 * restart on the same store version skips the snapshot, the Chroma loader child and the paging.
 *
 * Safe by construction:
 * - The key is the store version's identity as the service verified it: every listed file's
 *   path, size, mtime, ctime and inode (the fingerprint; a write always changes ctime), the
 *   folder's device and inode, the manifest's content, the collection asked for, and the code
 *   that reads and indexes a store. An entry is written only after the snapshot was checked
 *   against the manifest and the folder's fingerprint is the same after the load as before it.
 *   A new version, a changed manifest or any rewritten file is another key: never reused.
 * - An entry names its key in full, and its arrays carry their sha256: a truncated, corrupt
 *   or foreign file is refused with the reason, deleted, and the store is read through Chroma.
 * - Only the service writes here (0700 folder, temp file + rename).
 *
 * File layout (format 2): an array bundle (array-bundle.ts, magic "RAGIDXC2"): the arrays the
 * build thread sends the event loop (the vectors as read, the id, text and metadata columns, the
 * compiled keyword index), so a load copies arrays out and checks them: no JSON to parse, no
 * keyword index to compile (format 1 kept records and the keyword index as JSON: 10,000 chunks
 * took ~190 ms of the build thread to decode, 125 of it compiling the keyword text).
 */
export const INDEX_CACHE_DIR = 'index-cache';
const MAGIC = 'RAGIDXC2';
const FORMAT = 2;
/** Entries kept (the newest by use); each is about the size of its store's data. */
export const INDEX_CACHE_KEEP = 3;

export function indexCacheDir(runtimeDir: string): string {
  return join(runtimeDir, INDEX_CACHE_DIR);
}

export interface IndexCacheKey {
  /** File name of the entry (hash of `text`). */
  id: string;
  /** The full identity, repeated inside the entry. */
  text: string;
}

/** The key of a resolved store version (a stat of its folder; no file is read). */
export async function indexCacheKey(spec: Pick<StoreSpec, 'kind' | 'dir' | 'version' | 'fingerprint' | 'files' | 'manifest'>, collection: string | undefined): Promise<IndexCacheKey> {
  const d = await stat(spec.dir, { bigint: true });
  const text = JSON.stringify({
    format: FORMAT,
    // The code that decides what an entry holds: a code change never reuses old entries.
    code: sourceTag(import.meta.url, ['index-cache', 'array-bundle', 'index-worker', 'page-columns', 'keyword-index', 'keyword-postings', 'record-columns', 'metadata-columns', 'chroma-store', 'vector-scan']),
    endianness: endianness(),
    kind: spec.kind,
    dir: spec.dir,
    dev: String(d.dev),
    ino: String(d.ino),
    version: spec.version,
    fingerprint: spec.fingerprint,
    files: spec.files.map((f) => [f.rel, f.size, String(f.mtimeNs), String(f.ctimeNs), String(f.ino)]),
    manifest: spec.manifest ? sha256Hex(JSON.stringify(spec.manifest)) : null,
    collection: collection ?? null,
  });
  return { id: sha256Hex(text).slice(0, 32), text };
}

/**
 * A serving index shipped inside a store version by our publisher (`npm run ingest --
 * --serving-index`): the same file layout as a cache entry, listed in manifest.json, so its bytes
 * are checked with the version's other files. The loader then reads the version without a Chroma
 * child. Its key names only what the manifest says (no path, no code tag: the publisher and the
 * server may be different builds; FORMAT guards the layout). A key mismatch (another format, another
 * byte order) is not an error: the version is read through Chroma.
 */
export const SERVING_INDEX_FILE = 'serving-index.bin';

export function servingIndexKey(manifest: { collection: string; chunkCount: number; embedding: { dimension: number } }): IndexCacheKey {
  const text = JSON.stringify({ format: FORMAT, servingIndex: true, collection: manifest.collection, count: manifest.chunkCount, dimension: manifest.embedding.dimension });
  return { id: sha256Hex(text).slice(0, 32), text };
}

export function indexCacheFile(runtimeDir: string, key: IndexCacheKey): string {
  return join(indexCacheDir(runtimeDir), `${key.id}.idx`);
}

export interface CachedIndex {
  version: string;
  collection: string;
  space: 'cosine' | 'l2' | 'ip';
  count: number;
  dimension: number;
  keyword: { origin: 'store' | 'built'; size: number };
  ids: TextColumnData;
  documents: TextColumnData;
  /** Its dictionary's hash table is rebuilt on decode, not stored. */
  metadata: MetadataColumnData;
  /** count x dimension, row-major, as Chroma returned them (a cosine store's rows are scaled on load). */
  vectors: Float32Array;
  /** The compiled keyword index; its term table is rebuilt on decode, not stored. */
  postings: KeywordPostingsData;
}

interface Meta {
  format: number;
  key: string;
  endianness: string;
  version: string;
  collection: string;
  space: CachedIndex['space'];
  count: number;
  dimension: number;
  keyword: CachedIndex['keyword'] & { documentCount: number; analysis: unknown };
  /** Segments of each text column (their arrays are `<column>.segment.<i>`). */
  segments: { ids: number; documents: number; strings: number };
  createdAt: string;
}

/** Why an entry cannot be used (logged; the store is then read through Chroma). */
export class IndexCacheInvalid extends Error {}

const columnArrays = (prefix: string, c: TextColumnData): Array<[string, BundleArray]> => [
  [`${prefix}.segmentOf`, c.segmentOf],
  [`${prefix}.starts`, c.starts],
  ...c.segments.map((s, i): [string, BundleArray] => [`${prefix}.segment.${i}`, s]),
];

/** Serialise an index into the entry's bytes (array-bundle.ts: the arrays as the build thread sends them). */
export function encodeIndexCache(key: IndexCacheKey, index: CachedIndex): Buffer[] {
  const { metadata: m, postings: p } = index;
  const meta: Meta = {
    format: FORMAT,
    key: key.text,
    endianness: endianness(),
    version: index.version,
    collection: index.collection,
    space: index.space,
    count: index.count,
    dimension: index.dimension,
    keyword: { ...index.keyword, documentCount: p.documentCount, analysis: p.analysis },
    segments: { ids: index.ids.segments.length, documents: index.documents.segments.length, strings: m.strings.segments.length },
    createdAt: new Date().toISOString(),
  };
  return encodeBundle(MAGIC, meta, [
    ['vectors', index.vectors],
    ...columnArrays('ids', index.ids),
    ...columnArrays('documents', index.documents),
    ...columnArrays('metadata.strings', m.strings),
    ['metadata.rowStart', m.rowStart],
    ['metadata.entryKey', m.entryKey],
    ['metadata.entryKind', m.entryKind],
    ['metadata.entryValue', m.entryValue],
    ...STORED_POSTINGS_ARRAYS.map((k): [string, BundleArray] => [`postings.${k}`, p[k]]),
  ]);
}

/**
 * Check and decode an entry's bytes against the key the caller computed; throws IndexCacheInvalid
 * with the reason. Every array's type and length is checked here, each column's offsets and codes,
 * and the keyword index's ranges (keyword-postings.ts checkedPostings); hash tables are rebuilt,
 * never read: the file is untrusted (a shipped serving-index.bin comes with the store).
 */
export function decodeIndexCache(buf: Uint8Array, key: IndexCacheKey): CachedIndex {
  const bad = (why: string): never => {
    throw new IndexCacheInvalid(why);
  };
  let bundle: ReturnType<typeof decodeBundle>;
  try {
    bundle = decodeBundle(buf, MAGIC);
  } catch (err) {
    if (!(err instanceof BundleInvalid)) throw err;
    return bad(err.message === 'bad magic' ? 'not a serving index cache file of this format (bad magic)' : err.message);
  }
  const h = bundle.meta as Meta;
  if (typeof h !== 'object' || h === null) bad('the header holds no description');
  if (h.format !== FORMAT) bad(`format ${String(h.format)}, expected ${FORMAT}`);
  if (h.key !== key.text) bad('it was written for another store version, collection or code version');
  if (h.endianness !== endianness()) bad(`written on a ${h.endianness} host`);
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!int(h.count) || !int(h.dimension) || h.count < 1 || h.dimension < 1) bad('count or dimension is invalid');
  if (!['cosine', 'l2', 'ip'].includes(h.space)) bad(`unknown distance space ${String(h.space)}`);
  if (!h.keyword || !['store', 'built'].includes(h.keyword.origin) || !int(h.keyword.size) || !int(h.keyword.documentCount)) bad('the keyword index is not described');
  if (!h.segments || !int(h.segments.ids) || !int(h.segments.documents) || !int(h.segments.strings)) bad('the text columns are not described');
  const used = new Set<string>();
  const take = <T extends BundleArray>(name: string, Ctor: new (n: number) => T, length?: number): T => {
    const a = bundle.arrays.get(name);
    if (!(a instanceof Ctor)) return bad(`array ${name} is missing or of another type`);
    if (length !== undefined && a.length !== length) bad(`array ${name} holds ${a.length} values, expected ${length}`);
    used.add(name);
    return a;
  };
  const column = (prefix: string, segments: number, rows?: number): TextColumnData => {
    const c = {
      segmentOf: take(`${prefix}.segmentOf`, Uint32Array, rows),
      starts: take(`${prefix}.starts`, Uint32Array, rows),
      segments: Array.from({ length: segments }, (_, i) => take(`${prefix}.segment.${i}`, Uint8Array)),
    };
    try {
      checkTextColumn(c);
    } catch (err) {
      bad(`column ${prefix}: ${(err as Error).message}`);
    }
    return c;
  };
  const vectors = take('vectors', Float32Array, h.count * h.dimension);
  const ids = column('ids', h.segments.ids, h.count);
  const documents = column('documents', h.segments.documents, h.count);
  const strings = column('metadata.strings', h.segments.strings);
  const rowStart = take('metadata.rowStart', Uint32Array, h.count + 1);
  const entries = rowStart[h.count]!;
  const entryKey = take('metadata.entryKey', Uint32Array, entries);
  const entryKind = take('metadata.entryKind', Uint8Array, entries);
  const entryValue = take('metadata.entryValue', Float64Array, entries);
  let metadata: MetadataColumnData;
  try {
    // The dictionary's table is rebuilt (its column was checked above), refusing a string listed twice.
    metadata = { strings, stringTable: buildIdTable(new TextColumn(strings, { checked: true }), true), rowStart, entryKey, entryKind, entryValue };
    checkMetadataColumn(metadata);
  } catch (err) {
    return bad(`its metadata: ${(err as Error).message}`);
  }
  const arrays = {} as Record<StoredPostingsArrays, BundleArray>;
  for (const k of STORED_POSTINGS_ARRAYS) arrays[k] = take(`postings.${k}`, POSTINGS_TYPES[k] as new (n: number) => BundleArray);
  let postings: KeywordPostingsData;
  try {
    postings = checkedPostings({ ...(arrays as unknown as Omit<KeywordPostingsData, 'table' | 'origin' | 'documentCount' | 'analysis'>), origin: h.keyword.origin, documentCount: h.keyword.documentCount, analysis: parseAnalysis(h.keyword.analysis) });
  } catch (err) {
    return bad((err as Error).message.slice(0, 300));
  }
  if (used.size !== bundle.arrays.size) bad(`it holds ${bundle.arrays.size - used.size} arrays it does not describe`);
  return { version: String(h.version), collection: String(h.collection), space: h.space, count: h.count, dimension: h.dimension, keyword: { origin: h.keyword.origin, size: h.keyword.size }, ids, documents, metadata, vectors, postings };
}

/**
 * Write an entry atomically (temp file, fsync, rename) and keep only the newest INDEX_CACHE_KEEP.
 * Throws on failure (the caller logs it; serving does not depend on it).
 */
export async function writeIndexCache(runtimeDir: string, key: IndexCacheKey, index: CachedIndex): Promise<{ file: string; bytes: number }> {
  const dir = indexCacheDir(runtimeDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = indexCacheFile(runtimeDir, key);
  const parts = encodeIndexCache(key, index);
  const size = parts.reduce((n, p) => n + p.length, 0);
  // The cache must never take the room the next build's snapshot needs (about the same size).
  const free = await freeBytes(dir);
  if (free !== null && free < 2 * size) {
    throw new Error(`RUNTIME_DIR has ${free} bytes free and the entry takes ${size}: not written, the space is left for snapshots`);
  }
  const bytes = await writeCacheEntry(dir, file, parts);
  await pruneCacheDir(dir, { suffix: '.idx', keep: INDEX_CACHE_KEEP, pinned: file }).catch(() => undefined);
  return { file, bytes };
}
