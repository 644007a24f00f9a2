/**
 * A generation's metadata as columns: typed arrays and one dictionary of distinct strings instead
 * of one object per record. Built by the index build thread (index-worker.ts) and handed to the
 * event loop like the id and text columns (record-columns.ts): the dictionary's strings as UTF-8
 * bytes, every buffer transferred. The event loop then neither deserialises nor keeps
 * one object per record, so a swap promotes no per-record objects through its scavenges (10,000
 * records of 4 fields cloned in pages cost the event loop scavenges of 4-11 ms each,
 * `/tmp/s14/clone.mjs` in session 14), and a retired generation leaves no object graph to mark.
 *
 * Layout, one entry per (record, field), rows in order (CSR):
 * - `rowStart[r] .. rowStart[r + 1]`: the entries of row r, in the record's own field order;
 * - `entryKey[e]`: the field name, as a code into the dictionary;
 * - `entryKind[e]`: NULL, STRING, NUMBER, FALSE, TRUE or JSON (any other value: arrays, objects);
 * - `entryValue[e]`: the number, or the dictionary code of a string (or of a JSON text).
 * The dictionary holds each distinct field name and string value once, with a hash table over it
 * (record-columns.ts `IdIndex`), so a filter finds a field's code once per query.
 *
 * A record read back (`get`) is a fresh object equal to the one stored: same fields, same order,
 * same values (numbers are float64 either way; a JSON value round-trips through JSON).
 */
import { buildIdTable, columnBuffers, copyColumn, encodeTextColumn, grown, IdIndex, TextColumn, type TextColumnData } from './record-columns.js';
import type { Metadata } from './where-filter.js';

export const KIND_NULL = 0;
export const KIND_STRING = 1;
export const KIND_NUMBER = 2;
export const KIND_FALSE = 3;
export const KIND_TRUE = 4;
export const KIND_JSON = 5;

export interface MetadataColumnData {
  /** Distinct field names and string values (and JSON texts), once each. */
  strings: TextColumnData;
  /** Hash table over `strings` (record-columns.ts buildIdTable). */
  stringTable: Int32Array;
  /** Per row and one more: where its entries start. */
  rowStart: Uint32Array;
  entryKey: Uint32Array;
  entryKind: Uint8Array;
  entryValue: Float64Array;
}

/** Built row by row in the build thread. A null or missing record is stored as {} (as Chroma's clients show it). */
export class MetadataColumnBuilder {
  private readonly dictionary = new Map<string, number>();
  private readonly rowStart: Uint32Array;
  private entryKey = new Uint32Array(1024);
  private entryKind = new Uint8Array(1024);
  private entryValue = new Float64Array(1024);
  private entries = 0;
  private rows = 0;

  constructor(private readonly capacity: number) {
    this.rowStart = new Uint32Array(capacity + 1);
  }

  private code(s: string): number {
    let c = this.dictionary.get(s);
    if (c === undefined) {
      c = this.dictionary.size;
      this.dictionary.set(s, c);
    }
    return c;
  }

  private push(key: number, kind: number, value: number): void {
    if (this.entries === this.entryKey.length) {
      this.entryKey = grown(this.entryKey, this.entries + 1);
      this.entryKind = grown(this.entryKind, this.entries + 1);
      this.entryValue = grown(this.entryValue, this.entries + 1);
    }
    this.entryKey[this.entries] = key;
    this.entryKind[this.entries] = kind;
    this.entryValue[this.entries] = value;
    this.entries++;
  }

  add(meta: Record<string, unknown> | null | undefined): void {
    if (this.rows >= this.capacity) throw new Error(`a metadata column built for ${this.capacity} rows was given more`);
    if (meta && typeof meta === 'object') {
      for (const [k, v] of Object.entries(meta)) {
        if (v === undefined) continue;
        const key = this.code(k);
        if (v === null) this.push(key, KIND_NULL, 0);
        else if (typeof v === 'string') this.push(key, KIND_STRING, this.code(v));
        else if (typeof v === 'number') this.push(key, KIND_NUMBER, v);
        else if (typeof v === 'boolean') this.push(key, v ? KIND_TRUE : KIND_FALSE, 0);
        else this.push(key, KIND_JSON, this.code(JSON.stringify(v) ?? 'null'));
      }
    }
    this.rows++;
    this.rowStart[this.rows] = this.entries;
  }

  /** The column of the rows added. */
  finish(): MetadataColumnData {
    // The map keeps insertion order: its keys are the dictionary in code order.
    const strings = encodeTextColumn([...this.dictionary.keys()]);
    const n = this.rows;
    return {
      strings,
      stringTable: buildIdTable(new TextColumn(strings)),
      rowStart: n === this.capacity ? this.rowStart : this.rowStart.slice(0, n + 1),
      entryKey: this.entryKey.slice(0, this.entries),
      entryKind: this.entryKind.slice(0, this.entries),
      entryValue: this.entryValue.slice(0, this.entries),
    };
  }
}

export function encodeMetadataColumn(metadatas: ReadonlyArray<Record<string, unknown> | null | undefined>): MetadataColumnData {
  const b = new MetadataColumnBuilder(metadatas.length);
  for (const m of metadatas) b.add(m);
  return b.finish();
}

/** A copy of a column that stays usable after this one's buffers are transferred. */
export function copyMetadataColumn(c: MetadataColumnData): MetadataColumnData {
  return { strings: copyColumn(c.strings), stringTable: c.stringTable.slice(), rowStart: c.rowStart.slice(), entryKey: c.entryKey.slice(), entryKind: c.entryKind.slice(), entryValue: c.entryValue.slice() };
}

/** The buffers of a column (transfer list). */
export function metadataBuffers(c: MetadataColumnData): ArrayBuffer[] {
  return [...columnBuffers(c.strings), c.stringTable.buffer, c.rowStart.buffer, c.entryKey.buffer, c.entryKind.buffer, c.entryValue.buffer] as ArrayBuffer[];
}

/**
 * Dictionary entries kept as strings once read, by code: the first codes are the field names and
 * the values seen first, i.e. the ones most records share (sources, kinds). A filter on such a
 * field then compares strings it already has instead of slicing one per row (100,000 rows,
 * `{source: ...}`: 2.5 ms sliced, about the objects' 1.35 ms cached). Bounded, so a column of
 * distinct values does not bring one string per record back onto the heap.
 */
export const CACHED_STRINGS = 4096;

function checkLengths(c: MetadataColumnData): void {
  const rows = c.rowStart.length - 1;
  const entries = c.entryKey.length;
  if (rows < 0 || c.rowStart[0] !== 0 || c.rowStart[rows] !== entries || c.entryKind.length !== entries || c.entryValue.length !== entries) {
    throw new Error(`a metadata column's ${c.rowStart.length} row starts do not cover its ${entries} entries`);
  }
}

function checkEntries(c: MetadataColumnData, words: number): void {
  const rows = c.rowStart.length - 1;
  for (let r = 0; r < rows; r++) if (c.rowStart[r]! > c.rowStart[r + 1]!) throw new Error(`row ${r} of a metadata column ends before it starts`);
  for (let e = 0; e < c.entryKey.length; e++) {
    const kind = c.entryKind[e]!;
    if (c.entryKey[e]! >= words || kind > KIND_JSON) throw new Error(`entry ${e} of a metadata column is not valid`);
    if ((kind === KIND_STRING || kind === KIND_JSON) && !(c.entryValue[e]! >= 0 && c.entryValue[e]! < words && Number.isInteger(c.entryValue[e]!))) throw new Error(`entry ${e} of a metadata column points outside its dictionary`);
  }
}

/** Every offset and code of a column (what the constructor checks unless told `checked`); the build thread runs it before sending one. */
export function checkMetadataColumn(c: MetadataColumnData): void {
  checkLengths(c);
  checkEntries(c, c.strings.segmentOf.length);
}

export class MetadataColumn {
  readonly length: number;
  private readonly cache: Array<string | undefined> = [];
  private readonly dictionary: IdIndex;
  private readonly strings: TextColumn;
  private readonly rowStart: Uint32Array;
  private readonly entryKey: Uint32Array;
  private readonly entryKind: Uint8Array;
  private readonly entryValue: Float64Array;

  /**
   * Checks every offset and code, so a bad column fails here and not in a query; `checked`: the
   * build thread ran checkMetadataColumn on it already (100,000 records of 3 fields: ~10 ms the
   * event loop does not spend at a swap), only the lengths are checked here.
   */
  constructor(c: MetadataColumnData, options: { checked?: boolean } = {}) {
    this.strings = new TextColumn(c.strings, options);
    this.dictionary = new IdIndex(this.strings, c.stringTable);
    this.rowStart = c.rowStart;
    this.entryKey = c.entryKey;
    this.entryKind = c.entryKind;
    this.entryValue = c.entryValue;
    this.length = c.rowStart.length - 1;
    checkLengths(c);
    if (!options.checked) checkEntries(c, this.strings.length);
  }

  static from(metadatas: ReadonlyArray<Record<string, unknown> | null | undefined>): MetadataColumn {
    return new MetadataColumn(encodeMetadataColumn(metadatas));
  }

  /** Dictionary entry `code` (cached for the first CACHED_STRINGS codes). */
  private string(code: number): string {
    if (code >= CACHED_STRINGS) return this.strings.get(code);
    return (this.cache[code] ??= this.strings.get(code));
  }

  private value(e: number): unknown {
    switch (this.entryKind[e]) {
      case KIND_STRING:
        return this.string(this.entryValue[e]!);
      case KIND_NUMBER:
        return this.entryValue[e]!;
      case KIND_FALSE:
        return false;
      case KIND_TRUE:
        return true;
      case KIND_JSON:
        return JSON.parse(this.strings.get(this.entryValue[e]!)) as unknown;
      default:
        return null;
    }
  }

  /** Row `row`'s metadata as a fresh object ({} when it has none). */
  get(row: number): Metadata {
    const out: Metadata = {};
    for (let e = this.rowStart[row]!, end = this.rowStart[row + 1]!; e < end; e++) {
      const key = this.string(this.entryKey[e]!);
      // A field named __proto__ stays a field (an assignment would set the object's prototype).
      if (key === '__proto__') Object.defineProperty(out, key, { value: this.value(e), enumerable: true, writable: true, configurable: true });
      else out[key] = this.value(e);
    }
    return out;
  }

  slice(from: number, to: number): Metadata[] {
    const out: Metadata[] = [];
    for (let r = from; r < Math.min(to, this.length); r++) out.push(this.get(r));
    return out;
  }

  /** A reader of one field, by row (undefined: the row has no such field): for filters (where-filter.ts). */
  field(name: string): (row: number) => unknown {
    const key = this.dictionary.rowOf(name);
    if (key < 0) return () => undefined;
    return (row) => {
      for (let e = this.rowStart[row]!, end = this.rowStart[row + 1]!; e < end; e++) if (this.entryKey[e] === key) return this.value(e);
      return undefined;
    };
  }

  get bytes(): number {
    return this.strings.bytes + this.strings.length * 8 + this.dictionary.bytes + this.rowStart.byteLength + this.entryKey.byteLength + this.entryKind.byteLength + this.entryValue.byteLength;
  }
}
