import { distanceToScore, type DistanceSpace, type StoreHit } from './chroma-store.js';
import type { KeywordSearcher, LoadedRecords } from './index-loader.js';
import type { BackendInfo, ExportedPage, FusedHit, FusionRequest, KeywordHit, RecordText, RetrievalBackend } from './retrieval-backend.js';
import { TopK, VectorMatrix } from './vector-scan.js';
import { RagError } from '../errors.js';
import type { MetadataColumn } from './metadata-columns.js';
import type { IdIndex, TextColumn } from './record-columns.js';
import { compileRowFilter, type WhereDocument, type WhereFilter } from './where-filter.js';

/** hybridNow's top k of fused entries (reused: a call runs to its end synchronously). */
const FUSED = new TopK(64);

/**
 * A generation's store held in process memory: exact vector search over one Float32Array, ids,
 * texts and metadata as columns with an id table (record-columns.ts, metadata-columns.ts: no
 * object per record on the heap), BM25 over the generation's compiled keyword index (keyword-postings.ts). Filters use
 * where-filter.ts (Chroma's semantics) for dense and keyword results alike.
 */
export class InProcessBackend implements RetrievalBackend {
  readonly kind = 'in-process' as const;
  private readonly matrix: VectorMatrix;
  private readonly index: IdIndex;
  private readonly ids: TextColumn;
  private readonly documents: TextColumn;
  private readonly metadata: MetadataColumn;
  private readonly loadMs: number;
  private readonly loadedFrom: NonNullable<BackendInfo['loadedFrom']>;
  private readonly buildNice: number | null;
  private readonly buildThreadId: number;
  /** The keyword index's internal document number -> row (-1: not in the collection), for filters. */
  private readonly docRow: Int32Array;
  readonly keyword: KeywordSearcher;
  private readonly persist: () => void;

  private constructor(
    readonly name: string,
    readonly space: DistanceSpace,
    dimension: number,
    records: LoadedRecords,
    loadedFrom?: BackendInfo['loadedFrom'],
  ) {
    const columns = records.columns;
    if (!columns || !records.vectors) throw new RagError('RAG_STORE_INDEX_LOAD_FAILED', 'an in-process index needs the records read with their vectors');
    this.index = columns.ids;
    this.ids = columns.ids.ids;
    this.documents = columns.documents;
    this.docRow = columns.docRow;
    this.metadata = columns.metadata;
    this.keyword = records.keyword;
    this.persist = records.persist;
    this.loadMs = records.loadMs;
    this.loadedFrom = loadedFrom ?? (records.fromCache ? 'index-cache' : 'chroma');
    this.buildNice = records.buildNice;
    this.buildThreadId = records.buildThreadId;
    this.matrix = new VectorMatrix(records.vectors, this.ids.length, dimension, space, records.norms);
    if (this.docRow.length !== this.keyword.documents) throw new RagError('RAG_STORE_INDEX_LOAD_FAILED', `the keyword index has ${this.keyword.documents} documents, its row map ${this.docRow.length}`);
  }

  /** Everything it needs was built by the build thread: nothing per record is done here. */
  static async create(name: string, space: DistanceSpace, dimension: number, records: LoadedRecords, loadedFrom?: BackendInfo['loadedFrom']): Promise<InProcessBackend> {
    return new InProcessBackend(name, space, dimension, records, loadedFrom);
  }

  get count(): number {
    return this.ids.length;
  }

  /** Whether row r passes the filters; null when nothing filters. */
  private rowFilter(where?: WhereFilter, whereDocument?: WhereDocument): ((r: number) => boolean) | null {
    // A field is read from the metadata column, a text decoded from its column, only when the
    // filter reads it; $contains searches the column's bytes once for all rows.
    const metadata = this.metadata;
    return compileRowFilter<number>(where, whereDocument, (field) => metadata.field(field), this.documents.documentReader());
  }

  /** Rows passing the filters (1) or not (0); null when nothing filters. */
  private allowedRows(where?: WhereFilter, whereDocument?: WhereDocument): Uint8Array | null {
    const passes = this.rowFilter(where, whereDocument);
    if (!passes) return null;
    const mask = new Uint8Array(this.ids.length);
    for (let r = 0; r < mask.length; r++) mask[r] = passes(r) ? 1 : 0;
    return mask;
  }

  async query(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<StoreHit[]> {
    const { rows, distances } = this.matrix.search(vector, k, this.allowedRows(where, whereDocument));
    return rows.map((r, i) => ({
      id: this.ids.get(r),
      text: this.documents.get(r),
      distance: distances[i]!,
      score: distanceToScore(this.space, distances[i]!),
      metadata: this.metadata.get(r) as StoreHit['metadata'],
    }));
  }

  async nearestIds(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]> {
    const { rows, distances } = this.matrix.search(vector, k, this.allowedRows(where, whereDocument));
    return rows.map((r, i) => ({ id: this.ids.get(r), score: distanceToScore(this.space, distances[i]!) }));
  }

  /** BM25 top k among the records passing the filters (exact: the filter applies before the top k). */
  async keywordSearch(text: string, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]> {
    const passes = this.rowFilter(where, whereDocument);
    if (!passes) return this.keyword.search(text, k);
    // The filter evaluated once per indexed document, straight into the search's mask.
    const { docRow } = this;
    const allowed = new Uint8Array(docRow.length);
    for (let doc = 0; doc < docRow.length; doc++) {
      const r = docRow[doc]!;
      if (r >= 0 && passes(r)) allowed[doc] = 1;
    }
    return this.keyword.search(text, k, allowed);
  }

  hybridNow(vector: ArrayLike<number>, text: string, fusion: FusionRequest, where?: WhereFilter, whereDocument?: WhereDocument): FusedHit[] | null {
    const allowed = this.allowedRows(where, whereDocument);
    const { docRow } = this;
    // keywordSearch's filter, read through the rows' mask: a document competes if its row passes.
    const accept = allowed ? (doc: number) => docRow[doc]! >= 0 && allowed[docRow[doc]!] === 1 : undefined;
    // Views of the keyword index's scratch: valid until its next search, which nothing below makes.
    const keyword = this.keyword.searchDocsNow(text, fusion.candidates, accept);
    if (!keyword) return null;
    // A document of the keyword index that is not in the collection (a stale shipped index): the
    // path by id fuses and then drops it, which this one does not copy.
    for (let i = 0; i < keyword.docs.length; i++) if (docRow[keyword.docs[i]!]! < 0) return null;
    const dense = this.matrix.search(vector, fusion.candidates, allowed);
    // Fused entries in first-seen order (dense first, then keyword-only rows), as fuseRanks's Map.
    const { weights, rrfK } = fusion;
    const size = dense.rows.length + keyword.docs.length;
    const rows = new Int32Array(size);
    const scores = new Float64Array(size);
    const denseScores: Array<number | undefined> = new Array<number | undefined>(size).fill(undefined);
    const keywordScores: Array<number | undefined> = new Array<number | undefined>(size).fill(undefined);
    let m = 0;
    for (let i = 0; i < dense.rows.length; i++, m++) {
      rows[m] = dense.rows[i]!;
      scores[m] = weights.dense / (rrfK + i + 1);
      denseScores[m] = distanceToScore(this.space, dense.distances[i]!);
    }
    for (let i = 0; i < keyword.docs.length; i++) {
      const row = docRow[keyword.docs[i]!]!;
      const add = weights.keyword / (rrfK + i + 1);
      // At most a few dozen dense rows: a scan costs less than a Map.
      let at = 0;
      while (at < dense.rows.length && rows[at] !== row) at++;
      if (at === dense.rows.length) {
        at = m++;
        rows[at] = row;
        scores[at] = add;
      } else scores[at] = scores[at]! + add;
      keywordScores[at] = keyword.scores[i]!;
    }
    // The k best (least negated score), best first; equal scores keep first-seen order (what
    // fuseRanks's stable sort gives).
    const top = FUSED.reset(Math.min(fusion.k, m));
    for (let i = 0; i < m; i++) if (-scores[i]! < top.worst) top.add(-scores[i]!, i);
    return top.result(false).rows.map((i) => {
      const r = rows[i]!;
      return { id: this.ids.get(r), score: scores[i]!, denseScore: denseScores[i], keywordScore: keywordScores[i], text: this.documents.get(r), metadata: this.metadata.get(r) as StoreHit['metadata'], distance: NaN };
    });
  }

  async getByIds(ids: string[]): Promise<RecordText[]> {
    return ids.flatMap((id) => {
      const r = this.index.rowOf(id);
      return r < 0 ? [] : [{ id, text: this.documents.get(r), metadata: this.metadata.get(r) as StoreHit['metadata'] }];
    });
  }

  async *exportRecords(pageSize = 1000): AsyncGenerator<ExportedPage> {
    for (let start = 0; start < this.ids.length; start += pageSize) {
      const end = Math.min(this.ids.length, start + pageSize);
      const embeddings: number[][] = [];
      for (let r = start; r < end; r++) embeddings.push(this.matrix.row(r));
      yield { ids: this.ids.slice(start, end), documents: this.documents.slice(start, end), metadatas: this.metadata.slice(start, end) as Array<StoreHit['metadata']>, embeddings };
      // A macrotask between pages: a reader looping over every page (a document change reads the
      // whole version) would otherwise run them all in one task of the event loop (3,000 records: ~60 ms).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  describe(): BackendInfo {
    // Columns' UTF-8 bytes, 8 bytes a row of their arrays, the id table and row map, the metadata column.
    const n = this.ids.length;
    const bytes = this.matrix.bytes + this.ids.bytes + this.documents.bytes + n * 16 + this.index.bytes + this.docRow.byteLength + this.metadata.bytes + this.keyword.bytes;
    return { kind: this.kind, vectorIndex: this.matrix.kernel, vectorFirstPass: this.matrix.firstPass, space: this.space, memoryMiB: Math.round((bytes / 2 ** 20) * 10) / 10, loadMs: this.loadMs, loadedFrom: this.loadedFrom, buildNice: this.buildNice, buildThreadId: this.buildThreadId };
  }

  /** It serves: the build thread may write the serving index cache entry now (LoadedRecords.persist). */
  activated(): void {
    this.persist();
  }

  async dispose(): Promise<void> {
    await this.keyword.close();
  }
}
