import { Buffer } from 'node:buffer';

/**
 * A generation's ids and texts as columns: their UTF-8 bytes in a few buffers and typed arrays of
 * offsets, instead of one string per record. Built by the index build thread and transferred to
 * the event loop with the rest of the generation (every buffer moves, nothing is copied or
 * deserialised), so the event loop never copies, stores or garbage-collects one object per
 * record for them, and makes a string only for a row it returns. 10,000 records as separate
 * strings survived into the old generation in one scavenge of 11-23 ms on the event loop at every
 * swap (`node --trace-gc dist/bench/swap-probe.js`); joined strings copied in messages still cost
 * it 24-46 ms of message deserialisation per swap at 100,000 chunks (session 14's CPU profile).
 *
 * Rows are grouped into segments of at most SEGMENT_ROWS rows and SEGMENT_BYTES bytes (a row
 * longer than that gets a segment of its own); a row's text is a byte range of its segment. The id
 * lookup (`IdIndex`) is an open-addressing hash table over the id column's bytes, built by the
 * build thread too: the event loop holds no Map entry per record either.
 *
 * Texts are stored as UTF-8: a lone surrogate (which no text from Chroma can hold: its strings
 * are Rust strings, valid UTF-8) would come back as U+FFFD.
 */

/** Rows per segment at most. */
export const SEGMENT_ROWS = 4096;
/** Bytes per segment at most (a row longer than this gets a segment of its own). */
export const SEGMENT_BYTES = 1 << 22;

export interface TextColumnData {
  /** The UTF-8 bytes of consecutive rows, joined (each its own buffer: they are transferred). */
  segments: Uint8Array[];
  /** Per row: its segment. */
  segmentOf: Uint32Array;
  /** Per row: the byte where its text starts in its segment (it ends where the next row of that segment starts, or at the segment's end). */
  starts: Uint32Array;
}

const encoder = new TextEncoder();

/** A string's UTF-8 bytes. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** `a` if it holds `need` elements, else a copy at least twice as long (growable typed arrays). */
export function grown<T extends Uint8Array | Uint32Array | Int32Array | Float32Array | Float64Array>(a: T, need: number): T {
  if (a.length >= need) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(need, a.length * 2));
  b.set(a);
  return b;
}

/**
 * A column built row by row. `endPage()` closes the segment being filled: the build thread closes
 * one per page read, so each page's texts live on as one buffer (outside the JavaScript heap,
 * never copied again) instead of as one string per row that every scavenge of the build copies
 * until the last page is in.
 */
export class TextColumnBuilder {
  private readonly segments: Uint8Array[] = [];
  private readonly segmentOf: Uint32Array;
  private readonly starts: Uint32Array;
  private parts: string[] = [];
  private bytes = 0;
  private rows = 0;

  constructor(
    capacity: number,
    private readonly limits: { rows: number; bytes: number } = { rows: SEGMENT_ROWS, bytes: SEGMENT_BYTES },
  ) {
    this.segmentOf = new Uint32Array(capacity);
    this.starts = new Uint32Array(capacity);
  }

  add(text: string): void {
    if (this.rows >= this.segmentOf.length) throw new Error(`a text column built for ${this.segmentOf.length} rows was given more`);
    const size = Buffer.byteLength(text, 'utf8');
    if (this.parts.length >= this.limits.rows || (this.parts.length > 0 && this.bytes + size > this.limits.bytes)) this.endPage();
    this.segmentOf[this.rows] = this.segments.length;
    this.starts[this.rows] = this.bytes;
    this.parts.push(text);
    this.bytes += size;
    this.rows++;
  }

  /** Encode the rows added since the last segment into one. */
  endPage(): void {
    if (this.parts.length) {
      const segment = encoder.encode(this.parts.join(''));
      if (segment.length !== this.bytes) throw new Error(`a text column segment encoded to ${segment.length} bytes, its rows to ${this.bytes}`);
      this.segments.push(segment);
    }
    this.parts = [];
    this.bytes = 0;
  }

  /** The column of the rows added (fewer than the capacity: the arrays are cut to them). */
  finish(): TextColumnData {
    this.endPage();
    const n = this.rows;
    return {
      segments: this.segments,
      segmentOf: n === this.segmentOf.length ? this.segmentOf : this.segmentOf.slice(0, n),
      starts: n === this.starts.length ? this.starts : this.starts.slice(0, n),
    };
  }
}

/** Encode texts into a column in one go. `limits` for tests. */
export function encodeTextColumn(texts: readonly string[], limits: { rows: number; bytes: number } = { rows: SEGMENT_ROWS, bytes: SEGMENT_BYTES }): TextColumnData {
  const builder = new TextColumnBuilder(texts.length, limits);
  for (const t of texts) builder.add(t);
  return builder.finish();
}

/** A copy of a column that stays usable after this one's buffers are transferred. */
export function copyColumn(c: TextColumnData): TextColumnData {
  return { segments: c.segments.map((s) => s.slice()), segmentOf: c.segmentOf.slice(), starts: c.starts.slice() };
}

/** Every row of a column as its own string. */
export function columnRows(c: TextColumnData): string[] {
  const column = new TextColumn(c);
  return Array.from({ length: column.length }, (_, i) => column.get(i));
}

/** The buffers of a column (transfer list), each once. */
export function columnBuffers(c: TextColumnData): ArrayBuffer[] {
  return [...new Set([...c.segments.map((s) => s.buffer as ArrayBuffer), c.segmentOf.buffer as ArrayBuffer, c.starts.buffer as ArrayBuffer])];
}

/** Every row of a column points into its segments (what the build thread checks before sending one). */
export function checkTextColumn(c: TextColumnData): void {
  if (c.starts.length !== c.segmentOf.length) throw new Error('a text column needs one start per row');
  for (let r = 0; r < c.segmentOf.length; r++) {
    const seg = c.segments[c.segmentOf[r]!];
    if (seg === undefined || c.starts[r]! > seg.length) throw new Error(`row ${r} of a text column points outside its ${c.segments.length} segments`);
  }
}

/** A checked column's ends: one start per row, and its last row starts in the last segment. */
function checkTextColumnEnds(c: TextColumnData): void {
  if (c.starts.length !== c.segmentOf.length) throw new Error('a text column needs one start per row');
  const last = c.segmentOf.length - 1;
  if (last < 0) return;
  const seg = c.segments[c.segmentOf[last]!];
  if (seg === undefined || c.segmentOf[last] !== c.segments.length - 1 || c.starts[last]! > seg.length) throw new Error(`the last row of a text column does not end its ${c.segments.length} segments`);
}

export class TextColumn {
  readonly length: number;
  /** Bytes held (UTF-8). */
  readonly bytes: number;
  /** The segments as Buffers (same memory), for decoding and searching. */
  private readonly buffers: Buffer[];

  /**
   * Checks that every row points into its segments; `checked`: the build thread checked the
   * column (it builds and sends it), so only its ends are checked here: the last row's segment is
   * the last one (rows never go back to an earlier segment) and its start lies in it.
   * 100,000 rows: ~2 ms a column the event loop does not spend at a swap.
   */
  constructor(
    private readonly c: TextColumnData,
    options: { checked?: boolean } = {},
  ) {
    this.length = c.segmentOf.length;
    if (options.checked) checkTextColumnEnds(c);
    else checkTextColumn(c);
    this.buffers = c.segments.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength));
    this.bytes = c.segments.reduce((n, s) => n + s.byteLength, 0);
  }

  static from(texts: readonly string[]): TextColumn {
    return new TextColumn(encodeTextColumn(texts));
  }

  private end(row: number): number {
    const seg = this.c.segmentOf[row]!;
    return row + 1 < this.length && this.c.segmentOf[row + 1] === seg ? this.c.starts[row + 1]! : this.c.segments[seg]!.byteLength;
  }

  get(row: number): string {
    return this.buffers[this.c.segmentOf[row]!]!.toString('utf8', this.c.starts[row]!, this.end(row));
  }

  /** The rows from..to (exclusive) as strings (exports). */
  slice(from: number, to: number): string[] {
    const out: string[] = [];
    for (let r = from; r < Math.min(to, this.length); r++) out.push(this.get(r));
    return out;
  }

  /** Whether row `row` holds exactly the bytes `bytes[from..to)`, without making a string of the row. */
  equalsBytes(row: number, bytes: Uint8Array, from = 0, to = bytes.length): boolean {
    const start = this.c.starts[row]!;
    const end = this.end(row);
    if (end - start !== to - from) return false;
    return this.buffers[this.c.segmentOf[row]!]!.compare(bytes, from, to, start, end) === 0;
  }

  /** Whether the row holds exactly this ASCII string (every character below 0x80). */
  equalsAscii(row: number, ascii: string): boolean {
    const start = this.c.starts[row]!;
    if (this.end(row) - start !== ascii.length) return false;
    const b = this.buffers[this.c.segmentOf[row]!]!;
    for (let i = 0; i < ascii.length; i++) if (b[start + i] !== ascii.charCodeAt(i)) return false;
    return true;
  }

  /** Whether rows a and b hold the same text. */
  sameRows(a: number, b: number): boolean {
    const sa = this.c.starts[a]!;
    const sb = this.c.starts[b]!;
    const ea = this.end(a);
    if (ea - sa !== this.end(b) - sb) return false;
    return this.buffers[this.c.segmentOf[a]!]!.compare(this.buffers[this.c.segmentOf[b]!]!, sb, sb + (ea - sa), sa, ea) === 0;
  }

  /** The hash an id table files row `row` under (FNV-1a over its bytes), without making a string of the row. */
  hash(row: number): number {
    return hashRange(this.c.segments[this.c.segmentOf[row]!]!, this.c.starts[row]!, this.end(row));
  }

  /**
   * The column as a whereDocument filter reads it (where-filter.ts `DocumentReader`): a row's text
   * decoded, and `$contains` answered for all rows by one search of the bytes (`containing`).
   */
  documentReader(): { text(row: number): string; contains(needle: string): (row: number) => boolean } {
    return {
      text: (row) => this.get(row),
      contains: (needle) => {
        const rows = this.containing(needle);
        return (row) => rows[row] === 1;
      },
    };
  }

  /**
   * Rows whose text contains `needle`, as a mask (1: contains), found by searching the segments'
   * bytes (no string made per row). For well-formed UTF-8 a byte match is a character match (no
   * encoded character starts inside another); a needle that is not well-formed UTF-16 (a lone
   * surrogate) is searched row by row as a string. An empty needle is in every row.
   */
  containing(needle: string): Uint8Array {
    const mask = new Uint8Array(this.length);
    if (needle.length === 0) return mask.fill(1);
    if (!isWellFormed(needle)) {
      for (let r = 0; r < this.length; r++) if (this.get(r).includes(needle)) mask[r] = 1;
      return mask;
    }
    const pattern = utf8(needle);
    // Rows are in segment order: row r's segment is segmentOf[r], non-decreasing.
    let row = 0;
    for (let s = 0; s < this.buffers.length && row < this.length; s++) {
      const buf = this.buffers[s]!;
      const first = row;
      while (row < this.length && this.c.segmentOf[row] === s) row++;
      const last = row; // rows first..last-1 are in segment s
      let at = buf.indexOf(pattern, 0);
      let r = first;
      while (at >= 0 && r < last) {
        // The row holding byte `at`: the last row of the segment starting at or before it.
        while (r + 1 < last && this.c.starts[r + 1]! <= at) r++;
        const end = this.end(r);
        if (at + pattern.length <= end) mask[r] = 1;
        // No later match can lie inside row r (it would end past this one's end or be a repeat).
        if (end >= buf.length) break;
        at = buf.indexOf(pattern, Math.max(end, at + 1));
      }
    }
    return mask;
  }
}

const wellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;
/** No lone surrogates (String.prototype.isWellFormed, Node 20+; a scan where missing). */
function isWellFormed(s: string): boolean {
  if (wellFormed) return wellFormed.call(s);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}

/** FNV-1a over bytes (the id table's hash, and the keyword index's term table's). */
export function hashRange(b: Uint8Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

/** hashRange of an ASCII string's bytes, from its character codes (no encoding); -1 if a character is not ASCII. */
export function hashAscii(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return -1;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Open-addressing table (linear probing, load <= 1/2) from id to row over an id column: slot ->
 * row, -1 empty. A repeated id maps to its last row (as a Map filled in row order would), or is
 * refused (`refuseRepeats`: a dictionary read from a file, whose codes must be distinct).
 */
export function buildIdTable(ids: TextColumn, refuseRepeats = false): Int32Array {
  let size = 2;
  while (size < ids.length * 2) size <<= 1;
  const table = new Int32Array(size).fill(-1);
  const mask = size - 1;
  for (let row = 0; row < ids.length; row++) {
    let slot = ids.hash(row) & mask;
    for (;;) {
      const at = table[slot]!;
      if (at === -1 || ids.sameRows(at, row)) {
        if (at !== -1 && refuseRepeats) throw new Error(`rows ${at} and ${row} hold the same text`);
        table[slot] = row;
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  return table;
}

/** Row lookups by id over a column and its table (buildIdTable). */
export class IdIndex {
  private readonly mask: number;

  constructor(
    readonly ids: TextColumn,
    private readonly table: Int32Array,
  ) {
    if (table.length < 2 || (table.length & (table.length - 1)) !== 0 || table.length <= ids.length) throw new Error('an id table is a power of two longer than its column');
    this.mask = table.length - 1;
  }

  /** The row of `id`, or -1. */
  rowOf(id: string): number {
    // An ASCII id (the usual one) is hashed and compared by character code, not encoded.
    const h = hashAscii(id);
    if (h < 0) {
      const bytes = utf8(id);
      return this.rowOfBytes(bytes, 0, bytes.length);
    }
    let slot = h & this.mask;
    for (;;) {
      const row = this.table[slot]!;
      if (row === -1) return -1;
      if (row < this.ids.length && this.ids.equalsAscii(row, id)) return row;
      slot = (slot + 1) & this.mask;
    }
  }

  /** The row of the id whose UTF-8 bytes are `bytes[from..to)`, or -1 (no string made). */
  rowOfBytes(bytes: Uint8Array, from: number, to: number): number {
    let slot = hashRange(bytes, from, to) & this.mask;
    for (;;) {
      const row = this.table[slot]!;
      if (row === -1) return -1;
      if (row < this.ids.length && this.ids.equalsBytes(row, bytes, from, to)) return row;
      slot = (slot + 1) & this.mask;
    }
  }

  get bytes(): number {
    return this.table.byteLength;
  }
}
