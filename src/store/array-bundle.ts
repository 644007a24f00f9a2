import { createHash } from 'node:crypto';
import { sha256Hex } from '../fs/fingerprint.js';

/**
 * Named typed arrays in one file, read back as they were built: no text to parse, no index to
 * rebuild (the serving index cache and a shipped serving-index.bin, index-cache.ts). Layout: MAGIC
 * (8 bytes), u32 LE header length, the header (JSON: the caller's `meta`, each array's name, type
 * and length, the payload's sha256), zero padding to 8, then the payload: the arrays in the
 * header's order, each padded to 8 bytes. Host byte order (the caller records and checks it).
 *
 * The file is untrusted: `decodeBundle` checks the magic, the header's shape, that every array
 * fits the payload exactly and the payload's sha256, and copies each array into a buffer of its
 * own (the build thread transfers them one by one; no view depends on the file's alignment). What
 * the arrays mean is the caller's to check.
 */
export type ArrayType = 'u8' | 'u32' | 'i32' | 'f32' | 'f64';
export type BundleArray = Uint8Array | Uint32Array | Int32Array | Float32Array | Float64Array;

const CTOR = { u8: Uint8Array, u32: Uint32Array, i32: Int32Array, f32: Float32Array, f64: Float64Array } as const;
const MAX_HEADER = 1 << 24;

export function typeOf(a: BundleArray): ArrayType {
  if (a instanceof Uint8Array) return 'u8';
  if (a instanceof Uint32Array) return 'u32';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof Float32Array) return 'f32';
  return 'f64';
}

interface Header {
  meta: unknown;
  arrays: Array<[name: string, type: ArrayType, length: number]>;
  payload: [length: number, sha256: string];
}

/** Why a bundle cannot be used. */
export class BundleInvalid extends Error {}

const pad8 = (n: number) => Math.ceil(n / 8) * 8;

/** The bundle's bytes, as parts to write in order (views of the arrays: nothing is copied). */
export function encodeBundle(magic: string, meta: unknown, arrays: ReadonlyArray<readonly [string, BundleArray]>): Buffer[] {
  if (Buffer.byteLength(magic, 'latin1') !== 8) throw new Error('a bundle magic is 8 bytes');
  const parts: Buffer[] = [];
  let length = 0;
  for (const [, a] of arrays) {
    const bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    parts.push(bytes);
    length += bytes.length;
    const gap = pad8(bytes.length) - bytes.length;
    if (gap > 0) {
      parts.push(Buffer.alloc(gap));
      length += gap;
    }
  }
  // Hashed part by part: the payload is never joined into one more copy of everything (a 1M-chunk index is GBs).
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  const header: Header = { meta, arrays: arrays.map(([name, a]) => [name, typeOf(a), a.length]), payload: [length, hash.digest('hex')] };
  const h = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(pad8(12 + h.length));
  prefix.write(magic, 0, 'latin1');
  prefix.writeUInt32LE(h.length, 8);
  h.copy(prefix, 12);
  return [prefix, ...parts];
}

/** The header's meta and the arrays by name, each in a buffer of its own; throws BundleInvalid with the reason. */
export function decodeBundle(buf: Uint8Array, magic: string): { meta: unknown; arrays: Map<string, BundleArray> } {
  const bad = (why: string): never => {
    throw new BundleInvalid(why);
  };
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 12 || b.toString('latin1', 0, 8) !== magic) bad('bad magic');
  const hlen = b.readUInt32LE(8);
  if (hlen === 0 || hlen > MAX_HEADER || 12 + hlen > b.length) bad(`header length ${hlen} does not fit the ${b.length}-byte file (truncated?)`);
  let h: Header;
  try {
    h = JSON.parse(b.toString('utf8', 12, 12 + hlen)) as Header;
  } catch {
    return bad('the header is not valid JSON');
  }
  const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (typeof h !== 'object' || h === null || !Array.isArray(h.arrays) || !Array.isArray(h.payload)) bad('the header does not describe its arrays');
  const [length, sha] = h.payload;
  const start = pad8(12 + hlen);
  if (!count(length) || typeof sha !== 'string') bad('the header does not describe its payload');
  if (start + length !== b.length) bad(`the payload should end at byte ${start + length}, the file has ${b.length} (truncated or padded)`);
  const payload = b.subarray(start);
  if (sha256Hex(payload) !== sha) bad('the payload does not match its sha256 (corrupt)');
  const arrays = new Map<string, BundleArray>();
  let off = 0;
  for (const entry of h.arrays) {
    if (!Array.isArray(entry) || entry.length !== 3) return bad('an array is not described');
    const [name, type, n] = entry as unknown[];
    if (typeof name !== 'string' || arrays.has(name) || typeof type !== 'string' || !Object.hasOwn(CTOR, type) || !count(n)) return bad(`array ${String(name).slice(0, 40)} is not described`);
    const Ctor = CTOR[type as ArrayType];
    const bytes = n * Ctor.BYTES_PER_ELEMENT;
    if (off + bytes > length) bad(`array ${name.slice(0, 40)} runs past the payload`);
    const a = new Ctor(n);
    new Uint8Array(a.buffer).set(payload.subarray(off, off + bytes));
    arrays.set(name, a);
    off = pad8(off + bytes);
  }
  if (off !== length) bad(`the arrays take ${off} bytes of a ${length}-byte payload`);
  return { meta: h.meta, arrays };
}
