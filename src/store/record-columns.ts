/**
 * A generation's ids and texts as columns: a few long strings and typed arrays instead of one
 * string per record. Built by the index build thread and sent to the event loop in one message
 * (the strings are copied in one piece, the arrays transferred), so the event loop never
 * deserialises, stores or garbage-collects one object per record for them: 10,000 records as
 * separate strings survived into the old generation in one scavenge of 11-23 ms on the event
 * loop at every swap (`node --trace-gc dist/bench/swap-probe.js`).
 *
 * Rows are grouped into segments of at most SEGMENT_ROWS rows and SEGMENT_CHARS characters (a
 * JavaScript string holds at most 2^29 - 24); a row's text is a slice of its segment. The id
 * lookup (`IdTable`) is an open-addressing hash table over the id column, built by the build
 * thread too: the event loop holds no Map entry per record either.
 */

/** Rows per segment at most. */
export const SEGMENT_ROWS = 4096;
/**
 * Characters per segment at most (a row longer than this gets a segment of its own), and per
 * `segments` message from the build thread (index-worker.ts sends segments in messages of up to
 * this many characters; a longer segment alone). The event loop copies a message's strings in one task:
 * 2.3 M characters took it 8-15 ms (one-byte) and 21-24 ms (two-byte) here, so segments stay near
 * 256 K characters (~1-3 ms a message) instead of the whole column in one message (11-14 ms at
 * 10,000 chunks, ten times that at 100,000).
 */
export const SEGMENT_CHARS = 1 << 18;

export interface TextColumnData {
  /** The texts of consecutive rows, joined. */
  segments: string[];
  /** Per row: its segment. */
  segmentOf: Uint32Array;
  /** Per row: where its text starts in its segment (it ends where the next row of that segment starts, or at the segment's end). */
  starts: Uint32Array;
}

/**
 * A column built row by row. `endPage()` closes the segment being filled: the build thread joins
 * each page's texts as soon as the page is read, so they live on as one long string per page (in
 * V8's large-object space, never copied again) instead of as one string per row that every
 * scavenge of the build copies until the last page is in.
 */
export class TextColumnBuilder {
  private readonly segments: string[] = [];
  private readonly segmentOf: Uint32Array;
  private readonly starts: Uint32Array;
  private parts: string[] = [];
  private chars = 0;
  private rows = 0;

  constructor(
    capacity: number,
    private readonly limits: { rows: number; chars: number } = { rows: SEGMENT_ROWS, chars: SEGMENT_CHARS },
  ) {
    this.segmentOf = new Uint32Array(capacity);
    this.starts = new Uint32Array(capacity);
  }

  add(text: string): void {
    if (this.rows >= this.segmentOf.length) throw new Error(`a text column built for ${this.segmentOf.length} rows was given more`);
    if (this.parts.length >= this.limits.rows || (this.parts.length > 0 && this.chars + text.length > this.limits.chars)) this.endPage();
    this.segmentOf[this.rows] = this.segments.length;
    this.starts[this.rows] = this.chars;
    this.parts.push(text);
    this.chars += text.length;
    this.rows++;
  }

  /** Join the rows added since the last segment into one. */
  endPage(): void {
    if (this.parts.length) this.segments.push(this.parts.join(''));
    this.parts = [];
    this.chars = 0;
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

/** Join texts into a column in one go. `limits` for tests. */
export function encodeTextColumn(texts: readonly string[], limits: { rows: number; chars: number } = { rows: SEGMENT_ROWS, chars: SEGMENT_CHARS }): TextColumnData {
  const builder = new TextColumnBuilder(texts.length, limits);
  for (const t of texts) builder.add(t);
  return builder.finish();
}

/** A copy of a column whose arrays can be transferred while this one is kept (the strings are shared). */
export function copyColumn(c: TextColumnData): TextColumnData {
  return { segments: [...c.segments], segmentOf: c.segmentOf.slice(), starts: c.starts.slice() };
}

/** Every row of a column as its own string. */
export function columnRows(c: TextColumnData): string[] {
  const column = new TextColumn(c);
  return Array.from({ length: column.length }, (_, i) => column.get(i));
}

/** The typed arrays of a column (transfer list). */
export function columnBuffers(c: TextColumnData): ArrayBuffer[] {
  return [c.segmentOf.buffer as ArrayBuffer, c.starts.buffer as ArrayBuffer];
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
  /** Characters held. */
  readonly chars: number;

  /**
   * Checks that every row points into its segments; `checked`: the build thread checked the
   * column (it builds and sends it), so only its ends are checked here: the last row's segment is
   * the last one received (rows never go back to an earlier segment) and its start lies in it.
   * 100,000 rows: ~2 ms a column the event loop does not spend at a swap.
   */
  constructor(
    private readonly c: TextColumnData,
    options: { checked?: boolean } = {},
  ) {
    this.length = c.segmentOf.length;
    if (options.checked) checkTextColumnEnds(c);
    else checkTextColumn(c);
    this.chars = c.segments.reduce((n, s) => n + s.length, 0);
  }

  static from(texts: readonly string[]): TextColumn {
    return new TextColumn(encodeTextColumn(texts));
  }

  private end(row: number): number {
    const seg = this.c.segmentOf[row]!;
    return row + 1 < this.length && this.c.segmentOf[row + 1] === seg ? this.c.starts[row + 1]! : this.c.segments[seg]!.length;
  }

  get(row: number): string {
    return this.c.segments[this.c.segmentOf[row]!]!.slice(this.c.starts[row]!, this.end(row));
  }

  /** The rows from..to (exclusive) as strings (exports). */
  slice(from: number, to: number): string[] {
    const out: string[] = [];
    for (let r = from; r < Math.min(to, this.length); r++) out.push(this.get(r));
    return out;
  }

  /** Whether row `row` holds exactly `s`, without making a string of the row. */
  equals(row: number, s: string): boolean {
    const seg = this.c.segments[this.c.segmentOf[row]!]!;
    const start = this.c.starts[row]!;
    if (this.end(row) - start !== s.length) return false;
    for (let i = 0; i < s.length; i++) if (seg.charCodeAt(start + i) !== s.charCodeAt(i)) return false;
    return true;
  }

  /** hashText of row `row`, without making a string of the row. */
  hash(row: number): number {
    const seg = this.c.segments[this.c.segmentOf[row]!]!;
    return hashRange(seg, this.c.starts[row]!, this.end(row));
  }
}

/** FNV-1a over UTF-16 code units. */
function hashRange(s: string, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export function hashText(s: string): number {
  return hashRange(s, 0, s.length);
}

/**
 * Open-addressing table (linear probing, load <= 1/2) from id to row over an id column: slot ->
 * row, -1 empty. A repeated id maps to its last row (as a Map filled in row order would).
 */
export function buildIdTable(ids: TextColumn): Int32Array {
  let size = 2;
  while (size < ids.length * 2) size <<= 1;
  const table = new Int32Array(size).fill(-1);
  const mask = size - 1;
  for (let row = 0; row < ids.length; row++) {
    let slot = ids.hash(row) & mask;
    for (;;) {
      const at = table[slot]!;
      if (at === -1 || ids.equals(at, ids.get(row))) {
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
    let slot = hashText(id) & this.mask;
    for (;;) {
      const row = this.table[slot]!;
      if (row === -1) return -1;
      if (row < this.ids.length && this.ids.equals(row, id)) return row;
      slot = (slot + 1) & this.mask;
    }
  }

  get bytes(): number {
    return this.table.byteLength;
  }
}
