import { analyze, analyzeTerm, KEYWORD_FIELDS, tokenize, type KeywordAnalysis, type KeywordDoc } from './keyword-analysis.js';
import { EntryScan, LazyJsonArray } from './keyword-json.js';
import { grown, hashAscii, hashRange } from './record-columns.js';
import type { KeywordHit } from './retrieval-backend.js';

/**
 * A keyword (BM25) index as a few typed arrays: compiled once off the event loop (the niced build
 * thread), transferred to the main thread without a copy, and searched there in tens of
 * microseconds with no per-query allocation beyond the hits. It replaces a worker thread per
 * generation holding a MiniSearch object graph: no thread to start or stop in a swap, no index
 * to parse at normal priority, no message round trip per query, and a fraction of the memory.
 *
 * Scoring is MiniSearch 7's (BM25+ with k 1.2, b 0.7, d 0.5; per-field boosts; the sum times the
 * number of distinct query terms matched), computed in the same order, so a store's shipped
 * `keyword-index.json` (MiniSearch's JSON) ranks exactly as before; test/unit/keyword-postings.test.ts
 * compares both on a real corpus.
 *
 * Layout (F = KEYWORD_FIELDS.length, D = documents' internal ids, T = terms):
 *  - terms: UTF-8 bytes of every term back to back (`termBytes`, `termStart` T+1), found through an
 *    open-addressing hash table (`table`, FNV-1a, -1 = empty), so the main thread builds no Map;
 *  - `df` (T): documents whose title, headings or text hold the term (query pruning);
 *  - postings in CSR form: (term t, field f) owns `postDoc`/`postTf` from `postStart[t*F+f]` to
 *    `postStart[t*F+f+1]`, documents ascending;
 *  - `fieldLength` (D*F), `avgFieldLength` (F), `present` (D: 0 for an id MiniSearch discarded);
 *  - external ids: UTF-8 in `idBytes` from `idStart` (D+1), decoded for the hits only.
 */
export interface KeywordPostingsData {
  origin: 'store' | 'built';
  documentCount: number;
  analysis: KeywordAnalysis;
  termBytes: Uint8Array;
  termStart: Uint32Array;
  table: Int32Array;
  df: Uint32Array;
  postStart: Uint32Array;
  postDoc: Uint32Array;
  postTf: Float32Array;
  fieldLength: Float32Array;
  avgFieldLength: Float64Array;
  present: Uint8Array;
  idBytes: Uint8Array;
  idStart: Uint32Array;
}

const F = KEYWORD_FIELDS.length;
/** The fields a term's document frequency counts (query pruning): not the neighbours' text. */
const DF_FIELD: readonly boolean[] = KEYWORD_FIELDS.map((f) => f !== 'neighbours');
const BM25 = { k: 1.2, b: 0.7, d: 0.5 };

/** The typed arrays of a KeywordPostingsData, by name (one list for the transfer, the byte count and the shared copy). */
const ARRAY_KEYS = ['termBytes', 'termStart', 'table', 'df', 'postStart', 'postDoc', 'postTf', 'fieldLength', 'avgFieldLength', 'present', 'idBytes', 'idStart'] as const;
type PostingsArray = KeywordPostingsData[(typeof ARRAY_KEYS)[number]];

/** Every typed array of a KeywordPostingsData. */
function postingsArrays(d: KeywordPostingsData): PostingsArray[] {
  return ARRAY_KEYS.map((k) => d[k]);
}

/** The buffers to transfer with a KeywordPostingsData (postMessage's transfer list; shared ones are shared, not transferred). */
export function postingsBuffers(d: KeywordPostingsData): ArrayBuffer[] {
  return postingsArrays(d)
    .map((a) => a.buffer)
    .filter((b): b is ArrayBuffer => !(b instanceof SharedArrayBuffer));
}

/**
 * Keyword indexes with at least this many postings are searched on a thread of their own
 * (KeywordSearcher), not on the event loop: a query's cost grows with the postings of its terms
 * (~7 us per 1,000 chunks here: 0.35 ms at 50,000 chunks, 1.6 M postings; ~45 ms at 1,000,000 chunks
 * on the growth bench's corpus), and a search there blocks every other request. Below it the
 * message round trip would cost more than the search.
 */
export const KEYWORD_THREAD_MIN_POSTINGS = 4_000_000;

/** The same index with every array in shared memory, for a search thread to read without a copy. */
export function sharedPostings(d: KeywordPostingsData): KeywordPostingsData {
  return copyPostings(d, (n) => new SharedArrayBuffer(n));
}

/** A copy of every array (in plain memory by default): kept when the arrays themselves are transferred. */
export function copyPostings(d: KeywordPostingsData, alloc: (bytes: number) => ArrayBufferLike = (n) => new ArrayBuffer(n)): KeywordPostingsData {
  const out = { ...d };
  for (const k of ARRAY_KEYS) {
    const a = d[k];
    const copy = new (a.constructor as new (buffer: ArrayBufferLike) => PostingsArray)(alloc(a.byteLength));
    copy.set(a as never);
    (out as Record<(typeof ARRAY_KEYS)[number], PostingsArray>)[k] = copy;
  }
  return out;
}

/** Its arrays live in shared memory (sharedPostings): it is searched on a thread of its own. */
export function isSharedPostings(d: KeywordPostingsData): boolean {
  return d.postDoc.buffer instanceof SharedArrayBuffer;
}

/** Strings as UTF-8 back to back, string i at bytes start[i] .. start[i + 1]. */
function utf8Table(strings: string[]): { bytes: Uint8Array; start: Uint32Array } {
  const start = new Uint32Array(strings.length + 1);
  let off = 0;
  strings.forEach((str, i) => {
    start[i] = off;
    off += Buffer.byteLength(str, 'utf8');
  });
  start[strings.length] = off;
  return { bytes: new TextEncoder().encode(strings.join('')), start };
}

/** Terms numbered in the order first seen. */
class TermIds {
  readonly list: string[] = [];
  private readonly index = new Map<string, number>();

  of(term: string): number {
    let t = this.index.get(term);
    if (t === undefined) {
      t = this.list.length;
      this.list.push(term);
      this.index.set(term, t);
    }
    return t;
  }
}

/** MiniSearch 7's `toJSON()` shape (serializationVersion 2), as far as this module reads it. */
interface MiniPlain {
  documentCount: unknown;
  nextId: unknown;
  documentIds: unknown;
  fieldIds: unknown;
  fieldLength: unknown;
  averageFieldLength: unknown;
  index: unknown;
  serializationVersion?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xfffffff0;

/**
 * Compile MiniSearch's serialised index (`mini.toJSON()`, or the `index` of a shipped
 * keyword-index.json, untrusted) and the document frequencies into the typed layout. Throws an
 * Error naming what is wrong; runs in the build thread.
 */
export function compilePostings(plainIn: unknown, dfIn: unknown, analysis: KeywordAnalysis, origin: 'store' | 'built'): KeywordPostingsData {
  const steps = compileSteps(plainIn, dfIn, analysis, origin);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * compilePostings in slices of about `sliceMs` of work, with the thread's event loop run between
 * them: the build thread compiles a shipped index while it reads the store's pages, taking each
 * page as it arrives (so Chroma, the slower side, is kept busy) instead of after the compile.
 */
export async function compilePostingsInSlices(plainIn: unknown, dfIn: unknown, analysis: KeywordAnalysis, origin: 'store' | 'built', sliceMs = 4): Promise<KeywordPostingsData> {
  const steps = compileSteps(plainIn, dfIn, analysis, origin);
  let since = performance.now();
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    if (performance.now() - since >= sliceMs) {
      await new Promise((resolve) => setImmediate(resolve));
      since = performance.now();
    }
  }
}

/**
 * compilePostings' work, pausing (`yield`) every 128 index entries. The generator only sequences
 * the steps: V8 does not replace a running generator's frame with optimised code (no on-stack
 * replacement), and this one runs once per build, so the loops over documents, entries and
 * postings live in ordinary functions (DocumentTable, PostingsCompiler), which V8 optimises while
 * they run (in the generator, the 10,000-chunk compile spent ~50 ms in unoptimised code).
 */
function* compileSteps(plainIn: unknown, dfIn: unknown, analysis: KeywordAnalysis, origin: 'store' | 'built'): Generator<void, KeywordPostingsData> {
  if (!isObject(plainIn)) throw new Error('the index is not an object');
  const plain = plainIn as unknown as MiniPlain;
  if (plain.serializationVersion !== 2) throw new Error(`unknown MiniSearch serialization ${String(plain.serializationVersion)}`);
  const { documentCount, nextId } = plain;
  if (!isCount(documentCount) || !isCount(nextId) || documentCount > nextId) throw new Error('documentCount / nextId are invalid');
  if (!isObject(plain.documentIds) || !isObject(plain.fieldIds) || !isObject(plain.fieldLength) || !Array.isArray(plain.averageFieldLength) || !(Array.isArray(plain.index) || plain.index instanceof LazyJsonArray)) {
    throw new Error('documentIds, fieldIds, fieldLength, averageFieldLength or index is missing');
  }
  if (!isObject(dfIn)) throw new Error('df is missing');
  // Field slots follow KEYWORD_FIELDS (the order MiniSearch scores them in); the file's ids map to them.
  const slotOfFieldId = new Map<number, number>();
  const avgFieldLength = new Float64Array(F);
  for (const [name, id] of Object.entries(plain.fieldIds)) {
    const slot = (KEYWORD_FIELDS as readonly string[]).indexOf(name);
    if (slot < 0 || !isCount(id) || id >= F || slotOfFieldId.has(id)) throw new Error(`field ${JSON.stringify(name).slice(0, 40)} is invalid`);
    slotOfFieldId.set(id, slot);
    // Absent for a field no document has (MiniSearch never set it).
    const avg = plain.averageFieldLength[id] ?? 0;
    if (typeof avg !== 'number' || !Number.isFinite(avg) || avg < 0) throw new Error(`the average length of field ${name} is invalid`);
    avgFieldLength[slot] = avg;
  }
  const docs = new DocumentTable(nextId, documentCount, plain.documentIds, plain.fieldLength, slotOfFieldId);
  yield;

  // Terms: the index's, then df's others (heading-only terms have a df but no postings when headings are not indexed).
  const entries = plain.index as unknown[] | LazyJsonArray;
  const indexTerms = entries.length;
  const compiler = new PostingsCompiler(docs, avgFieldLength, slotOfFieldId, indexTerms);
  for (let t = 0; t < indexTerms; t += 128) {
    if (t > 0) yield;
    compiler.entries(entries, t, Math.min(indexTerms, t + 128));
  }
  yield;
  const { terms } = compiler;
  const df = documentFrequencies(terms, dfIn);
  const T = terms.list.length;
  const p = compiler.p;
  const postStart = new Uint32Array(T * F + 1);
  postStart.set(compiler.indexStart);
  postStart.fill(p, indexTerms * F);
  const postDoc = compiler.postDoc.slice(0, p);
  const postTf = compiler.postTf.slice(0, p);

  const { bytes: termBlob, start: termStart } = utf8Table(terms.list);
  const table = termTable(termBlob, termStart, T);
  const { bytes: idBytes, start: idStart } = utf8Table(docs.ids);
  return { origin, documentCount, analysis, termBytes: termBlob, termStart, table, df, postStart, postDoc, postTf, fieldLength: docs.fieldLength, avgFieldLength, present: docs.present, idBytes, idStart };
}

/** df's terms numbered after the index's (`terms` gains those it lacks), and their counts by term number. */
function documentFrequencies(terms: TermIds, dfIn: Record<string, unknown>): Uint32Array {
  const entries = Object.entries(dfIn);
  for (const [term, n] of entries) {
    if (!isCount(n)) throw new Error(`df of ${JSON.stringify(term).slice(0, 40)} is invalid`);
    terms.of(term);
  }
  const df = new Uint32Array(terms.list.length);
  for (const [term, n] of entries) df[terms.of(term)] = n as number;
  return df;
}

/** A MiniSearch index's documents (`documentIds`, `fieldLength`), checked: which short ids are present, their ids and field lengths. */
class DocumentTable {
  readonly present: Uint8Array;
  readonly ids: string[];
  readonly fieldLength: Float32Array;

  constructor(
    /** nextId: short ids are below it. */
    readonly D: number,
    documentCount: number,
    documentIds: Record<string, unknown>,
    fieldLengths: Record<string, unknown>,
    slotOfFieldId: Map<number, number>,
  ) {
    this.present = new Uint8Array(D);
    this.ids = new Array<string>(D).fill('');
    let presentCount = 0;
    for (const [key, id] of Object.entries(documentIds)) {
      const short = Number(key);
      if (!isCount(short) || short >= D || String(short) !== key || typeof id !== 'string' || this.present[short]) throw new Error(`document id ${key.slice(0, 20)} is invalid`);
      this.present[short] = 1;
      this.ids[short] = id;
      presentCount++;
    }
    if (presentCount !== documentCount) throw new Error(`documentIds holds ${presentCount} documents, documentCount says ${documentCount}`);
    this.fieldLength = new Float32Array(D * F);
    for (const [key, lens] of Object.entries(fieldLengths)) {
      const short = Number(key);
      if (!isCount(short) || short >= D || String(short) !== key || !Array.isArray(lens) || lens.length > F) throw new Error(`field lengths of document ${key.slice(0, 20)} are invalid`);
      lens.forEach((len, id) => {
        const slot = slotOfFieldId.get(id);
        if (len === undefined || len === null) return;
        if (slot === undefined || !isCount(len)) throw new Error(`field lengths of document ${key.slice(0, 20)} are invalid`);
        this.fieldLength[short * F + slot] = len;
      });
    }
  }
}

/**
 * The postings of a MiniSearch index's entries, (term, slot) ranges in slot order: entry t's
 * postings in slot s are postDoc/postTf[indexStart[t * F + s], the next range's start).
 */
class PostingsCompiler {
  readonly terms = new TermIds();
  readonly indexStart: Uint32Array;
  postDoc: Uint32Array;
  postTf: Float32Array;
  p = 0;
  private readonly scan = new EntryScan();
  /** The file's field id of each slot (-1: none), and as the key of the entry's object (null: none). */
  private readonly fieldIdOfSlot = new Int32Array(F).fill(-1);
  private readonly fieldKeyOfSlot: Array<string | null> = Array.from({ length: F }, () => null);

  constructor(
    private readonly docs: DocumentTable,
    private readonly avgFieldLength: Float64Array,
    slotOfFieldId: Map<number, number>,
    indexTerms: number,
  ) {
    for (const [id, slot] of slotOfFieldId) {
      this.fieldIdOfSlot[slot] = id;
      this.fieldKeyOfSlot[slot] = String(id);
    }
    this.indexStart = new Uint32Array(indexTerms * F);
    this.postDoc = new Uint32Array(Math.max(1024, indexTerms * 8));
    this.postTf = new Float32Array(this.postDoc.length);
  }

  /** Entries [from, to) in order: each read by LazyJsonArray.scan when it can, else as JSON.parse gives it (`at`). */
  entries(entries: unknown[] | LazyJsonArray, from: number, to: number): void {
    const lazy = entries instanceof LazyJsonArray ? entries : null;
    for (let t = from; t < to; t++) {
      if (lazy?.scan(t, this.scan)) this.scanned(t);
      else this.parsed(t, entries.at(t));
    }
  }

  private push(short: number, tf: number): void {
    if (this.p === this.postDoc.length) {
      this.postDoc = grown(this.postDoc, this.p + 1);
      this.postTf = grown(this.postTf, this.p + 1);
    }
    this.postDoc[this.p] = short;
    this.postTf[this.p] = tf;
    this.p++;
  }

  /** Entry t as JSON.parse gives it: checked whole. A JSON object's integer keys iterate in ascending order (canonical ones only: "01" is refused), so documents come sorted. */
  private parsed(t: number, entry: unknown): void {
    const { D, present } = this.docs;
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !isObject(entry[1])) throw new Error('an index entry is invalid');
    if (this.terms.of(entry[0]) !== t) throw new Error('the index lists a term twice');
    const fields = entry[1] as Record<string, unknown>;
    const invalid = () => new Error(`the postings of ${JSON.stringify(entry[0]).slice(0, 40)} are invalid`);
    let seen = 0;
    for (let slot = 0; slot < F; slot++) {
      this.indexStart[t * F + slot] = this.p;
      const key = this.fieldKeyOfSlot[slot] ?? null;
      const docs = key === null ? undefined : fields[key];
      if (docs === undefined) continue;
      seen++;
      if (!isObject(docs)) throw invalid();
      // BM25 divides by the field's average length: a posting in a field of average 0 is a contradiction.
      const avgOk = this.avgFieldLength[slot]! > 0;
      for (const docKey in docs) {
        const short = Number(docKey);
        const tf = docs[docKey];
        if (!isCount(short) || short >= D || String(short) !== docKey || typeof tf !== 'number' || !Number.isFinite(tf) || tf <= 0) throw invalid();
        if (!avgOk) throw new Error(`the postings of ${JSON.stringify(entry[0]).slice(0, 40)} are in a field of average length 0`);
        if (present[short]) this.push(short, tf);
      }
    }
    if (Object.keys(fields).length !== seen) throw invalid();
  }

  /** Entry t as LazyJsonArray.scan read it: the same checks in the same order (its form already ensures keys are canonical, sorted and unique, and tf positive integers). */
  private scanned(t: number): void {
    const { D, present } = this.docs;
    const scan = this.scan;
    if (this.terms.of(scan.term) !== t) throw new Error('the index lists a term twice');
    const invalid = () => new Error(`the postings of ${JSON.stringify(scan.term).slice(0, 40)} are invalid`);
    let seen = 0;
    for (let slot = 0; slot < F; slot++) {
      this.indexStart[t * F + slot] = this.p;
      const id = this.fieldIdOfSlot[slot]!;
      let f = 0;
      while (f < scan.fields && scan.fieldKey[f] !== id) f++;
      if (id < 0 || f === scan.fields) continue;
      seen++;
      const avgOk = this.avgFieldLength[slot]! > 0;
      for (let j = scan.fieldFrom[f]!, to = scan.fieldTo[f]!; j < to; j++) {
        const short = scan.doc[j]!;
        if (short >= D) throw invalid();
        if (!avgOk) throw new Error(`the postings of ${JSON.stringify(scan.term).slice(0, 40)} are in a field of average length 0`);
        if (present[short]) this.push(short, scan.tf[j]!);
      }
    }
    if (scan.fields !== seen) throw invalid();
  }
}

/** Growable typed array storage for (key, doc, tf) postings: off the JS heap, doubled as needed. */
class Triples {
  key = new Uint32Array(1 << 14);
  doc = new Uint32Array(1 << 14);
  tf = new Float32Array(1 << 14);
  n = 0;
  push(key: number, doc: number, tf: number): void {
    this.key = grown(this.key, this.n + 1);
    this.doc = grown(this.doc, this.n + 1);
    this.tf = grown(this.tf, this.n + 1);
    this.key[this.n] = key;
    this.doc[this.n] = doc;
    this.tf[this.n] = tf;
    this.n++;
  }
}

/**
 * A stored record's keyword document, as the service builds the keyword index of a version that
 * ships none (from the texts as Chroma returns them): its text, and its title from metadata when
 * it has one. `npm run ingest -- --from-chroma` builds the one it ships the same way.
 */
export function recordKeywordDoc(id: string, text: string, metadata: Record<string, unknown> | null): { id: string; text: string; title?: string } {
  const title = metadata?.title;
  return typeof title === 'string' ? { id, text, title } : { id, text };
}

/**
 * Builds the typed layout straight from documents, one at a time, with MiniSearch's own arithmetic
 * (field length = distinct raw tokens, MiniSearch's running average field length, tf = occurrences
 * of the analysed term), so it ranks exactly as KeywordIndex.build(...).compile() does; but the
 * postings live in typed arrays, off the JS heap, and no document needs to be kept. MiniSearch's
 * object graph for 1M chunks did not fit a worker's heap (bench/results/swaps-2026-12-05-s8.md).
 */
export class PostingsBuilder {
  private readonly terms = new TermIds();
  /** Per term, as numbered by `terms`. */
  private dfCounts = new Uint32Array(1024);
  private readonly postings = new Triples();
  private readonly ids: string[] = [];
  private fieldLength = new Float32Array(1024 * F);
  private readonly avgFieldLength = new Float64Array(F);
  private readonly seenField = new Uint8Array(F);
  /**
   * Every distinct raw token seen, numbered, with its term (`tokenTerm`: the term's number, -1 for
   * a stop word): a token is analysed (stemmed) once per build, not once per occurrence.
   */
  private readonly tokenNo = new Map<string, number>();
  private tokenTerm = new Int32Array(1024);
  /** Scratch, per token or term: the last (document, field) pass that saw it, and the term's count in that pass. */
  private tokenSeen = new Uint32Array(1024);
  private termSeen = new Uint32Array(1024);
  private termTf = new Uint32Array(1024);
  /** Per term: 1 + the last document counted in its df. */
  private dfSeen = new Uint32Array(1024);
  private pass = 0;
  private readonly touched: number[] = [];

  constructor(private readonly analysis: KeywordAnalysis) {}

  /** The number of a raw token, analysed and given its term's number the first time it is seen. */
  private token(raw: string): number {
    let k = this.tokenNo.get(raw);
    if (k !== undefined) return k;
    k = this.tokenNo.size;
    // A token of 13 or more characters is a slice that keeps its whole document's text alive (V8's
    // sliced strings): the key kept for the build (and the term made from it) is a copy of its own.
    const own = raw.length >= 13 ? Buffer.from(raw, 'latin1').toString('latin1') : raw;
    this.tokenNo.set(own, k);
    this.tokenTerm = grown(this.tokenTerm, k + 1);
    this.tokenSeen = grown(this.tokenSeen, k + 1);
    const term = analyzeTerm(own, this.analysis);
    if (term) {
      const t = this.terms.of(term);
      const need = t + 1;
      this.dfCounts = grown(this.dfCounts, need);
      this.termSeen = grown(this.termSeen, need);
      this.termTf = grown(this.termTf, need);
      this.dfSeen = grown(this.dfSeen, need);
      this.tokenTerm[k] = t;
    } else {
      this.tokenTerm[k] = -1;
    }
    return k;
  }

  get size(): number {
    return this.ids.length;
  }

  /**
   * One document, as KeywordIndex.build adds it (title only when non-empty; headings and neighbours
   * only when boosted): per field, its length is its distinct raw tokens and each term's tf its
   * occurrences; a term's df counts the documents whose text, title or headings hold it. Terms are
   * numbered in the order first seen, as MiniSearch's postings list them.
   */
  add(d: KeywordDoc): void {
    const docNo = this.ids.length;
    this.ids.push(d.id);
    this.fieldLength = grown(this.fieldLength, (docNo + 1) * F);
    const headings = this.analysis.fieldBoosts.headings > 0 ? d.headings : undefined;
    const neighbours = this.analysis.fieldBoosts.neighbours > 0 ? d.neighbours : undefined;
    const values: Array<string | undefined> = KEYWORD_FIELDS.map((f) => (f === 'text' ? d.text : f === 'title' ? d.title || undefined : f === 'headings' ? headings || undefined : neighbours || undefined));
    for (let s = 0; s < F; s++) {
      const value = values[s];
      if (value == null) continue;
      const pass = ++this.pass;
      const touched = this.touched;
      touched.length = 0;
      let length = 0;
      for (const raw of tokenize(value)) {
        const k = this.token(raw);
        if (this.tokenSeen[k] !== pass) {
          this.tokenSeen[k] = pass;
          length++;
        }
        const t = this.tokenTerm[k]!;
        if (t < 0) continue;
        if (this.termSeen[t] !== pass) {
          this.termSeen[t] = pass;
          this.termTf[t] = 0;
          touched.push(t);
        }
        this.termTf[t]!++;
      }
      this.fieldLength[docNo * F + s] = length;
      // MiniSearch's running mean: the count is every document added before, with or without this field.
      this.avgFieldLength[s] = (this.avgFieldLength[s]! * docNo + length) / (docNo + 1);
      this.seenField[s] = 1;
      for (const t of touched) {
        this.postings.push(t * F + s, docNo, this.termTf[t]!);
        if (DF_FIELD[s] && this.dfSeen[t] !== docNo + 1) {
          this.dfSeen[t] = docNo + 1;
          this.dfCounts[t]!++;
        }
      }
    }
  }

  /** The typed layout (a counting sort of the postings by term and field; documents stay ascending). */
  finish(origin: 'store' | 'built'): KeywordPostingsData {
    const T = this.terms.list.length;
    const D = this.ids.length;
    const { key, doc, tf, n } = this.postings;
    const postStart = new Uint32Array(T * F + 1);
    for (let i = 0; i < n; i++) postStart[key[i]! + 1]!++;
    for (let k = 1; k <= T * F; k++) postStart[k] = postStart[k]! + postStart[k - 1]!;
    const next = postStart.slice(0, T * F);
    const postDoc = new Uint32Array(n);
    const postTf = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const at = next[key[i]!]!++;
      postDoc[at] = doc[i]!;
      postTf[at] = tf[i]!;
    }
    const { bytes: termBytes, start: termStart } = utf8Table(this.terms.list);
    const { bytes: idBytes, start: idStart } = utf8Table(this.ids);
    const avgFieldLength = Float64Array.from(this.avgFieldLength, (v, s) => (this.seenField[s] ? v : 0));
    return {
      origin,
      documentCount: D,
      analysis: this.analysis,
      termBytes,
      termStart,
      table: termTable(termBytes, termStart, T),
      df: this.dfCounts.slice(0, T),
      postStart,
      postDoc,
      postTf,
      fieldLength: this.fieldLength.slice(0, D * F),
      avgFieldLength,
      present: new Uint8Array(D).fill(1),
      idBytes,
      idStart,
    };
  }
}

/** The format of KeywordIndex.serialize() text (3: stemmed terms, a headings field); keyword-index.ts reads and writes this one. */
export const KEYWORD_TEXT_FORMAT = 3;

/** Open-addressing hash table of the terms (FNV-1a over their UTF-8 bytes; -1 = empty). */
function termTable(termBytes: Uint8Array, termStart: Uint32Array, T: number, refuseRepeats = false): Int32Array {
  let cap = 16;
  while (cap < T * 2) cap *= 2;
  const table = new Int32Array(cap).fill(-1);
  for (let t = 0; t < T; t++) {
    const from = termStart[t]!;
    const to = termStart[t + 1]!;
    let slot = hashRange(termBytes, from, to) & (cap - 1);
    while (table[slot] !== -1) {
      if (refuseRepeats && sameBytes(termBytes, termStart[table[slot]!]!, termStart[table[slot]! + 1]!, termBytes, from, to)) throw new Error('its keyword index lists a term twice');
      slot = (slot + 1) & (cap - 1);
    }
    table[slot] = t;
  }
  return table;
}

/** Whether a[aFrom..aTo) and b[bFrom..bTo) hold the same bytes. */
function sameBytes(a: Uint8Array, aFrom: number, aTo: number, b: Uint8Array, bFrom: number, bTo: number): boolean {
  if (aTo - aFrom !== bTo - bFrom) return false;
  for (let i = 0; i < aTo - aFrom; i++) if (a[aFrom + i] !== b[bFrom + i]) return false;
  return true;
}

/** The arrays a compiled index is stored as (the term table is rebuilt from the terms on load). */
export type StoredPostingsArrays = Exclude<(typeof ARRAY_KEYS)[number], 'table'>;
export const STORED_POSTINGS_ARRAYS = ARRAY_KEYS.filter((k): k is StoredPostingsArrays => k !== 'table');
/** Each stored array's type. */
export const POSTINGS_TYPES = {
  termBytes: Uint8Array,
  termStart: Uint32Array,
  df: Uint32Array,
  postStart: Uint32Array,
  postDoc: Uint32Array,
  postTf: Float32Array,
  fieldLength: Float32Array,
  avgFieldLength: Float64Array,
  present: Uint8Array,
  idBytes: Uint8Array,
  idStart: Uint32Array,
} as const satisfies Record<StoredPostingsArrays, unknown>;

/**
 * A compiled index read back from a file (a serving index, index-cache.ts; untrusted: its own
 * sha256 proves nothing about who wrote it): every length, offset, document number and weight is
 * checked, and the term table is rebuilt here rather than read (a table with no empty slot would
 * make a lookup loop forever), refusing a term listed twice. Throws an Error naming what is wrong.
 */
export function checkedPostings(d: Omit<KeywordPostingsData, 'table'>): KeywordPostingsData {
  const { termBytes, termStart, df, postStart, postDoc, postTf, fieldLength, avgFieldLength, present, idBytes, idStart, documentCount } = d;
  const bad = (what: string): never => {
    throw new Error(`its keyword index ${what}`);
  };
  const D = present.length;
  const T = termStart.length - 1;
  const offsets = (a: Uint32Array, end: number, what: string) => {
    if (a.length === 0 || a[0] !== 0 || a[a.length - 1] !== end) bad(`has ${what} that do not cover their data`);
    for (let i = 1; i < a.length; i++) if (a[i]! < a[i - 1]!) bad(`has ${what} out of order`);
  };
  offsets(termStart, termBytes.length, 'term offsets');
  offsets(idStart, idBytes.length, 'id offsets');
  offsets(postStart, postDoc.length, 'posting ranges');
  if (idStart.length !== D + 1 || fieldLength.length !== D * F || avgFieldLength.length !== F || df.length !== T || postStart.length !== T * F + 1 || postTf.length !== postDoc.length) {
    bad('has arrays of inconsistent lengths');
  }
  let presentCount = 0;
  for (let i = 0; i < D; i++) {
    if (present[i]! > 1) bad('marks a document neither present nor absent');
    presentCount += present[i]!;
  }
  if (!Number.isSafeInteger(documentCount) || presentCount !== documentCount) bad(`holds ${presentCount} documents, it says ${documentCount}`);
  for (let t = 0; t < T; t++) if (df[t]! > documentCount) bad('has a document frequency above its document count');
  for (let i = 0; i < fieldLength.length; i++) if (!(fieldLength[i]! >= 0 && fieldLength[i]! < Infinity)) bad('has an invalid field length');
  for (let s = 0; s < F; s++) if (!(avgFieldLength[s]! >= 0 && avgFieldLength[s]! < Infinity)) bad('has an invalid average field length');
  for (let t = 0; t < T; t++) {
    for (let s = 0; s < F; s++) {
      const from = postStart[t * F + s]!;
      const to = postStart[t * F + s + 1]!;
      // BM25 divides by the field's average length (as compilePostings refuses).
      if (from < to && !(avgFieldLength[s]! > 0)) bad('has postings in a field of average length 0');
      for (let i = from; i < to; i++) {
        const doc = postDoc[i]!;
        if (doc >= D || present[doc] !== 1) bad('has a posting of a document it does not hold');
        if (!(postTf[i]! > 0 && postTf[i]! < Infinity)) bad('has an invalid term frequency');
      }
    }
  }
  const table = termTable(termBytes, termStart, T, true);
  return { ...d, table };
}

/** Searches a compiled index on the calling thread (see KeywordPostingsData). */
export class KeywordPostings {
  readonly origin: 'store' | 'built';
  /** In shared memory: KeywordSearcher searches it on a thread of its own. */
  readonly shared: boolean;
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();
  private readonly boosts: Float64Array;
  // Scratch per document, reused by every query (a search runs to its end in one task).
  // Per document, in one 16-byte slot (a posting touches one cache line, not three): the score sum
  // at Float64 index 2 doc, and at Int32 index 4 doc + 2 the distinct query terms matched (high 16
  // bits) and 1 + the last query term that matched (low 16 bits; 0: untouched).
  private scores: Float64Array | null = null;
  private marks: Int32Array | null = null;
  private touched: Int32Array | null = null;
  /** The bounded best list of a search (searchDocs returns views of it). */
  private bestDoc = new Int32Array(0);
  private bestScore = new Float64Array(0);

  constructor(private readonly d: KeywordPostingsData) {
    this.origin = d.origin;
    this.shared = isSharedPostings(d);
    // MiniSearch multiplies by `boost[field] || 1`.
    this.boosts = Float64Array.from(KEYWORD_FIELDS, (f) => d.analysis.fieldBoosts[f] || 1);
  }

  get size(): number {
    return this.d.documentCount;
  }

  /** The compiled arrays (shared ones go to the search thread as they are). */
  get data(): KeywordPostingsData {
    return this.d;
  }

  /** Bytes held (the typed arrays). */
  get bytes(): number {
    return postingsArrays(this.d).reduce((s, a) => s + a.byteLength, 0);
  }

  /** The term's index, or -1. An ASCII term (the usual query word) is hashed and compared by character code, not encoded. */
  private find(term: string): number {
    const { table, termBytes, termStart } = this.d;
    const h = hashAscii(term);
    if (h < 0) return this.findBytes(this.enc.encode(term));
    const n = term.length;
    const mask = table.length - 1;
    let slot = h & mask;
    for (;;) {
      const t = table[slot]!;
      if (t === -1) return -1;
      const s = termStart[t]!;
      if (termStart[t + 1]! - s === n) {
        let i = 0;
        while (i < n && termBytes[s + i] === term.charCodeAt(i)) i++;
        if (i === n) return t;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** The index of the term with these UTF-8 bytes, or -1. */
  private findBytes(key: Uint8Array): number {
    const { table, termBytes, termStart } = this.d;
    const mask = table.length - 1;
    let slot = hashRange(key, 0, key.length) & mask;
    for (;;) {
      const t = table[slot]!;
      if (t === -1) return -1;
      if (sameBytes(termBytes, termStart[t]!, termStart[t + 1]!, key, 0, key.length)) return t;
      slot = (slot + 1) & mask;
    }
  }

  /**
   * The query's terms (as KeywordIndex.search analyses them) minus those in more than maxDfRatio
   * of the documents; when nothing is left, the two rarest.
   */
  private queryTerms(query: string): number[] {
    const n = Math.max(1, this.d.documentCount);
    const unique = [...new Set(analyze(query, this.d.analysis))];
    const found = unique.map((term) => this.find(term));
    const dfOf = (t: number) => (t < 0 ? 0 : this.d.df[t]!);
    const kept = found.filter((t) => dfOf(t) / n <= this.d.analysis.maxDfRatio);
    const chosen = kept.length > 0 ? kept : [...found].sort((a, b) => dfOf(a) - dfOf(b)).slice(0, 2);
    return chosen.filter((t) => t >= 0);
  }

  /** Internal document numbers run from 0 to this (exclusive); see idOf. */
  get documents(): number {
    return this.d.present.length;
  }

  /** The external id of an internal document number ('' for one MiniSearch discarded). */
  idOf(doc: number): string {
    if (!this.d.present[doc]) return '';
    const { idBytes } = this.d;
    const from = this.d.idStart[doc]!;
    const to = this.d.idStart[doc + 1]!;
    // A short ASCII id (the usual one) is made from its bytes directly: no decoder call.
    if (to - from <= 64) {
      let id = '';
      for (let i = from; i < to; i++) {
        const c = idBytes[i]!;
        if (c > 0x7f) return this.dec.decode(idBytes.subarray(from, to));
        id += String.fromCharCode(c);
      }
      return id;
    }
    return this.dec.decode(idBytes.subarray(from, to));
  }

  /**
   * The `limit` best documents for the query. With `accept`, only documents it accepts (by
   * internal number) compete, so a selective filter still gets its full top `limit`.
   */
  search(query: string, limit: number, accept?: (doc: number) => boolean): KeywordHit[] {
    const { docs, scores } = this.searchDocs(query, limit, accept);
    const hits: KeywordHit[] = [];
    for (let j = 0; j < docs.length; j++) hits.push({ id: this.idOf(docs[j]!), score: scores[j]! });
    return hits;
  }

  /**
   * As `search`, by internal document number (no id decoded): views of arrays the next search
   * reuses, so read them before searching again.
   */
  searchDocs(query: string, limit: number, accept?: (doc: number) => boolean): { docs: Int32Array; scores: Float64Array } {
    // A term's number and the count of terms matched each take 16 bits of a document's mark.
    const terms = this.queryTerms(query).slice(0, 0x7fff);
    if (terms.length === 0 || limit <= 0) return { docs: new Int32Array(0), scores: new Float64Array(0) };
    const { postStart, postDoc, postTf, fieldLength, avgFieldLength, documentCount, present } = this.d;
    const D = present.length;
    if (!this.scores || !this.marks) {
      const slots = new ArrayBuffer(D * 16);
      this.scores = new Float64Array(slots);
      this.marks = new Int32Array(slots);
    }
    const { scores, marks } = this;
    const touched = (this.touched ??= new Int32Array(D));
    let nTouched = 0;
    const { k, b, d } = BM25;
    for (let q = 0; q < terms.length; q++) {
      const t = terms[q]!;
      const q1 = q + 1;
      for (let s = 0; s < F; s++) {
        const from = postStart[t * F + s]!;
        const to = postStart[t * F + s + 1]!;
        if (from === to) continue;
        const size = to - from;
        const idf = Math.log(1 + (documentCount - size + 0.5) / (size + 0.5));
        const avg = avgFieldLength[s]!;
        const boost = this.boosts[s]!;
        // boost * idf * (d + tf (k + 1) / (tf + k (1 - b + b len / avg))), its constants taken out of the loop.
        const base = boost * idf * d;
        const scale = boost * idf * (k + 1);
        const norm0 = k * (1 - b);
        const normLen = (k * b) / avg;
        for (let i = from; i < to; i++) {
          const doc = postDoc[i]!;
          const tf = postTf[i]!;
          const score = base + (scale * tf) / (tf + norm0 + normLen * fieldLength[doc * F + s]!);
          const m = marks[doc * 4 + 2]!;
          if ((m & 0xffff) !== q1) {
            if (m === 0) touched[nTouched++] = doc;
            marks[doc * 4 + 2] = (((m >>> 16) + 1) << 16) | q1;
          }
          scores[doc * 2] = scores[doc * 2]! + score;
        }
      }
    }
    // The k best of score x distinct terms matched; among equal scores the first touched stays first.
    // A bounded list sorted best first, with a floor: most documents fall below it and cost one comparison.
    const cap = Math.min(limit, nTouched);
    if (this.bestDoc.length < cap) {
      this.bestDoc = new Int32Array(cap);
      this.bestScore = new Float64Array(cap);
    }
    const { bestDoc, bestScore } = this;
    let filled = 0;
    for (let j = 0; j < nTouched; j++) {
      const doc = touched[j]!;
      const score = scores[doc * 2]! * (marks[doc * 4 + 2]! >>> 16);
      scores[doc * 2] = 0;
      marks[doc * 4 + 2] = 0;
      if (filled === cap && !(score > bestScore[cap - 1]!)) continue;
      if (accept && !accept(doc)) continue;
      let p = filled < cap ? filled++ : cap - 1;
      while (p > 0 && bestScore[p - 1]! < score) {
        bestScore[p] = bestScore[p - 1]!;
        bestDoc[p] = bestDoc[p - 1]!;
        p--;
      }
      bestScore[p] = score;
      bestDoc[p] = doc;
    }
    return { docs: bestDoc.subarray(0, filled), scores: bestScore.subarray(0, filled) };
  }
}
