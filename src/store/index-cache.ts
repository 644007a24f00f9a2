import { mkdir, stat } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { sha256Hex, sourceTag } from '../fs/fingerprint.js';
import { pruneCacheDir, writeCacheEntry } from '../fs/cache-entry.js';
import { freeBytes } from '../fs/safe-fs.js';
import type { StoreSpec } from './layout.js';

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
 * - An entry names its key in full, and every section carries its sha256: a truncated, corrupt
 *   or foreign file is refused with the reason, deleted, and the store is read through Chroma.
 * - Only the service writes here (0700 folder, temp file + rename).
 *
 * File layout: "RAGIDXC1", u32 LE header length, header JSON, then the sections the header
 * locates (offset, length, sha256): vectors (float32, host byte order, recorded in the header),
 * records JSON ({ ids, documents, metadatas }), keyword index JSON (KeywordIndex.serialize()).
 */
export const INDEX_CACHE_DIR = 'index-cache';
const MAGIC = 'RAGIDXC1';
const FORMAT = 1;
/** Entries kept (the newest by use); each is about the size of its store's data. */
export const INDEX_CACHE_KEEP = 3;
const MAX_HEADER = 1 << 20;

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
    code: sourceTag(import.meta.url, ['index-cache', 'index-worker', 'keyword-index', 'chroma-store', 'vector-scan']),
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
  ids: string[];
  documents: string[];
  metadatas: Array<Record<string, string | number | boolean | null>>;
  /** count x dimension, row-major (a copy the caller owns). */
  vectors: Float32Array;
  /** KeywordIndex.serialize() text. */
  keywordText: string;
}

interface Header {
  format: number;
  key: string;
  endianness: string;
  version: string;
  collection: string;
  space: CachedIndex['space'];
  count: number;
  dimension: number;
  keyword: CachedIndex['keyword'];
  sections: Record<'vectors' | 'records' | 'keyword', [offset: number, length: number, sha256: string]>;
  createdAt: string;
}

/** Why an entry cannot be used (logged; the store is then read through Chroma). */
export class IndexCacheInvalid extends Error {}

/** Serialise an index into the entry's bytes. */
export function encodeIndexCache(key: IndexCacheKey, index: CachedIndex): Buffer[] {
  const vectors = Buffer.from(index.vectors.buffer, index.vectors.byteOffset, index.vectors.byteLength);
  const records = Buffer.from(JSON.stringify({ ids: index.ids, documents: index.documents, metadatas: index.metadatas }), 'utf8');
  const keyword = Buffer.from(index.keywordText, 'utf8');
  const sections = {} as Header['sections'];
  // The header's length depends on the offsets: lay the sections out after a header of bounded size.
  const header = (base: number): Buffer => {
    let off = base;
    for (const [name, b] of [['vectors', vectors], ['records', records], ['keyword', keyword]] as const) {
      sections[name] = [off, b.length, sha256Hex(b)];
      off += b.length;
    }
    const h: Header = {
      format: FORMAT,
      key: key.text,
      endianness: endianness(),
      version: index.version,
      collection: index.collection,
      space: index.space,
      count: index.count,
      dimension: index.dimension,
      keyword: index.keyword,
      sections,
      createdAt: new Date().toISOString(),
    };
    return Buffer.from(JSON.stringify(h), 'utf8');
  };
  // Offsets are padded to 8 so the vectors can be viewed in place; iterate until the header length is stable.
  let base = 0;
  let h = header(0);
  for (let i = 0; i < 4; i++) {
    const next = Math.ceil((12 + h.length) / 8) * 8;
    if (next === base) break;
    base = next;
    h = header(base);
  }
  const prefix = Buffer.alloc(base);
  prefix.write(MAGIC, 0, 'latin1');
  prefix.writeUInt32LE(h.length, 8);
  h.copy(prefix, 12);
  return [prefix, vectors, records, keyword];
}

/** Check and decode an entry's bytes against the key the caller computed; throws IndexCacheInvalid with the reason. */
export function decodeIndexCache(buf: Buffer, key: IndexCacheKey): CachedIndex {
  const bad = (why: string): never => {
    throw new IndexCacheInvalid(why);
  };
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) bad('not a serving index cache file (bad magic)');
  const hlen = buf.readUInt32LE(8);
  if (hlen === 0 || hlen > MAX_HEADER || 12 + hlen > buf.length) bad(`header length ${hlen} does not fit the ${buf.length}-byte file (truncated?)`);
  let h: Header;
  try {
    h = JSON.parse(buf.toString('utf8', 12, 12 + hlen)) as Header;
  } catch {
    return bad('the header is not valid JSON');
  }
  if (h.format !== FORMAT) bad(`format ${String(h.format)}, expected ${FORMAT}`);
  if (h.key !== key.text) bad('it was written for another store version, collection or code version');
  if (h.endianness !== endianness()) bad(`written on a ${h.endianness} host`);
  const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!int(h.count) || !int(h.dimension) || h.count < 1 || h.dimension < 1) bad('count or dimension is invalid');
  if (!['cosine', 'l2', 'ip'].includes(h.space)) bad(`unknown distance space ${String(h.space)}`);
  const section = (name: keyof Header['sections']): Buffer => {
    const s = h.sections?.[name];
    if (!Array.isArray(s) || !int(s[0]) || !int(s[1]) || typeof s[2] !== 'string') return bad(`section ${name} is not described`);
    const [off, len, want] = s;
    if (off + len > buf.length) bad(`section ${name} ends at byte ${off + len}, the file has ${buf.length} (truncated)`);
    const b = buf.subarray(off, off + len);
    if (sha256Hex(b) !== want) bad(`section ${name} does not match its sha256 (corrupt)`);
    return b;
  };
  const vb = section('vectors');
  if (vb.length !== h.count * h.dimension * 4) bad(`the vectors section holds ${vb.length} bytes, ${h.count} x ${h.dimension} float32 need ${h.count * h.dimension * 4}`);
  const vectors = new Float32Array(h.count * h.dimension);
  new Uint8Array(vectors.buffer).set(vb);
  let records: { ids?: unknown; documents?: unknown; metadatas?: unknown };
  try {
    records = JSON.parse(section('records').toString('utf8')) as typeof records;
  } catch (err) {
    if (err instanceof IndexCacheInvalid) throw err;
    return bad('the records section is not valid JSON');
  }
  const { ids, documents, metadatas } = records;
  if (!Array.isArray(ids) || !Array.isArray(documents) || !Array.isArray(metadatas) || ids.length !== h.count || documents.length !== h.count || metadatas.length !== h.count) {
    bad(`the records section does not hold ${h.count} records`);
  }
  if (!(ids as unknown[]).every((id) => typeof id === 'string') || !(documents as unknown[]).every((d) => typeof d === 'string')) bad('the records section holds ids or texts that are not strings');
  if (!(metadatas as unknown[]).every((m) => m !== null && typeof m === 'object' && !Array.isArray(m))) bad('the records section holds metadata that are not objects');
  const keywordText = section('keyword').toString('utf8');
  if (!h.keyword || !['store', 'built'].includes(h.keyword.origin) || !int(h.keyword.size)) bad('the keyword index is not described');
  return {
    version: h.version,
    collection: h.collection,
    space: h.space,
    count: h.count,
    dimension: h.dimension,
    keyword: h.keyword,
    ids: ids as string[],
    documents: documents as string[],
    metadatas: metadatas as CachedIndex['metadatas'],
    vectors,
    keywordText,
  };
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
