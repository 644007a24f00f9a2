import { distanceToScore, type DistanceSpace, type StoreHit } from './chroma-store.js';
import type { KeywordSearcher, LoadedRecords } from './index-loader.js';
import type { BackendInfo, ExportedPage, KeywordHit, RecordText, RetrievalBackend } from './retrieval-backend.js';
import { VectorMatrix } from './vector-scan.js';
import { compileRecordFilter, type WhereDocument, type WhereFilter } from './where-filter.js';

/**
 * A generation's store held in process memory: exact vector search over one Float32Array,
 * texts and metadata in arrays, BM25 over the generation's compiled keyword index (keyword-postings.ts). Filters use
 * where-filter.ts (Chroma's semantics) for dense and keyword results alike.
 */
export class InProcessBackend implements RetrievalBackend {
  readonly kind = 'in-process' as const;
  private readonly rowOf = new Map<string, number>();
  private readonly matrix: VectorMatrix;
  private readonly ids: string[];
  private readonly documents: string[];
  private readonly metadatas: Array<StoreHit['metadata']>;
  private readonly loadMs: number;
  private readonly loadedFrom: NonNullable<BackendInfo['loadedFrom']>;
  private readonly buildNice: number | null;
  private textBytes = 0;
  /** The keyword index's internal document number -> row (-1: not in the collection), for filters. */
  private readonly docRow: Int32Array;
  readonly keyword: KeywordSearcher;

  /** Use `create()`: it indexes the ids in slices, yielding the event loop between them. */
  private constructor(
    readonly name: string,
    readonly space: DistanceSpace,
    dimension: number,
    records: LoadedRecords,
    loadedFrom?: BackendInfo['loadedFrom'],
  ) {
    this.ids = records.ids;
    this.documents = records.documents;
    this.metadatas = records.metadatas;
    this.keyword = records.keyword;
    this.loadMs = records.loadMs;
    this.loadedFrom = loadedFrom ?? (records.fromCache ? 'index-cache' : 'chroma');
    this.buildNice = records.buildNice;
    this.matrix = new VectorMatrix(records.vectors!, records.ids.length, dimension, space, records.norms);
    this.docRow = new Int32Array(this.keyword.documents).fill(-1);
  }

  static async create(name: string, space: DistanceSpace, dimension: number, records: LoadedRecords, loadedFrom?: BackendInfo['loadedFrom']): Promise<InProcessBackend> {
    const b = new InProcessBackend(name, space, dimension, records, loadedFrom);
    const SLICE = 1000;
    for (let start = 0; start < b.ids.length; start += SLICE) {
      const end = Math.min(b.ids.length, start + SLICE);
      for (let i = start; i < end; i++) {
        b.rowOf.set(b.ids[i]!, i);
        b.textBytes += b.documents[i]!.length * 2;
      }
      await new Promise((r) => setImmediate(r));
    }
    for (let start = 0; start < b.docRow.length; start += SLICE) {
      const end = Math.min(b.docRow.length, start + SLICE);
      for (let d = start; d < end; d++) b.docRow[d] = b.rowOf.get(b.keyword.idOf(d)) ?? -1;
      await new Promise((r) => setImmediate(r));
    }
    return b;
  }

  get count(): number {
    return this.ids.length;
  }

  /** Rows passing the filters (1) or not (0); null when nothing filters. */
  private allowedRows(where?: WhereFilter, whereDocument?: WhereDocument): Uint8Array | null {
    const pass = compileRecordFilter(where, whereDocument);
    if (!pass) return null;
    const mask = new Uint8Array(this.ids.length);
    for (let r = 0; r < mask.length; r++) mask[r] = pass(this.metadatas[r], this.documents[r]) ? 1 : 0;
    return mask;
  }

  async query(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<StoreHit[]> {
    const { rows, distances } = this.matrix.search(vector, k, this.allowedRows(where, whereDocument));
    return rows.map((r, i) => ({
      id: this.ids[r]!,
      text: this.documents[r]!,
      distance: distances[i]!,
      score: distanceToScore(this.space, distances[i]!),
      metadata: this.metadatas[r]!,
    }));
  }

  async nearestIds(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]> {
    const { rows, distances } = this.matrix.search(vector, k, this.allowedRows(where, whereDocument));
    return rows.map((r, i) => ({ id: this.ids[r]!, score: distanceToScore(this.space, distances[i]!) }));
  }

  /** BM25 top k among the records passing the filters (exact: the filter applies before the top k). */
  async keywordSearch(text: string, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]> {
    const pass = compileRecordFilter(where, whereDocument);
    if (!pass) return this.keyword.search(text, k);
    // The filter evaluated once per indexed document, straight into the search's mask.
    const { docRow } = this;
    const allowed = new Uint8Array(docRow.length);
    for (let doc = 0; doc < docRow.length; doc++) {
      const r = docRow[doc]!;
      if (r >= 0 && pass(this.metadatas[r], this.documents[r])) allowed[doc] = 1;
    }
    return this.keyword.search(text, k, allowed);
  }

  async getByIds(ids: string[]): Promise<RecordText[]> {
    return ids.flatMap((id) => {
      const r = this.rowOf.get(id);
      return r === undefined ? [] : [{ id, text: this.documents[r]!, metadata: this.metadatas[r]! }];
    });
  }

  async *exportRecords(pageSize = 1000): AsyncGenerator<ExportedPage> {
    for (let start = 0; start < this.ids.length; start += pageSize) {
      const end = Math.min(this.ids.length, start + pageSize);
      const embeddings: number[][] = [];
      for (let r = start; r < end; r++) embeddings.push(this.matrix.row(r));
      yield { ids: this.ids.slice(start, end), documents: this.documents.slice(start, end), metadatas: this.metadatas.slice(start, end), embeddings };
    }
  }

  describe(): BackendInfo {
    const textBytes = this.textBytes;
    // ids, metadata objects and map entries: ~200 bytes a record is what V8 heap snapshots show for this shape.
    const bytes = this.matrix.bytes + textBytes + this.ids.length * 200 + this.keyword.bytes;
    return { kind: this.kind, vectorIndex: this.matrix.kernel, space: this.space, memoryMiB: Math.round((bytes / 2 ** 20) * 10) / 10, loadMs: this.loadMs, loadedFrom: this.loadedFrom, buildNice: this.buildNice };
  }

  async dispose(): Promise<void> {
    await this.keyword.close();
  }
}
