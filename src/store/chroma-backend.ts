import type { ChromaStore, StoreHit } from './chroma-store.js';
import type { KeywordSearcher } from './index-loader.js';
import type { BackendInfo, ExportedPage, KeywordHit, RecordText, RetrievalBackend } from './retrieval-backend.js';
import { compileRecordFilter, compileWhere, compileWhereDocument, type WhereDocument, type WhereFilter } from './where-filter.js';

/**
 * Retrieval answered by a Chroma server: the generation's own child (stores above
 * SERVE_INDEX_MAX_MB) or a remote server (CHROMA_URL). Dense filters run in Chroma (same
 * semantics); keyword hits are filtered here with where-filter.ts on records fetched by id, in rank order.
 */
export class ChromaBackend implements RetrievalBackend {
  constructor(
    readonly kind: 'chroma-child' | 'chroma-remote',
    private readonly store: ChromaStore,
    readonly keyword: KeywordSearcher,
  ) {}

  get name(): string {
    return this.store.name;
  }
  get space() {
    return this.store.space;
  }

  /** Invalid filters are a 400 with our code before they reach Chroma. */
  private check(where?: WhereFilter, whereDocument?: WhereDocument): void {
    if (where) compileWhere(where);
    if (whereDocument) compileWhereDocument(whereDocument);
  }

  async query(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<StoreHit[]> {
    this.check(where, whereDocument);
    return this.store.query(Array.from(vector), k, where, whereDocument);
  }

  async nearestIds(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]> {
    this.check(where, whereDocument);
    return this.store.nearestIds(Array.from(vector), k, where, whereDocument);
  }

  /**
   * BM25 top k among the records passing the filters. The index holds no metadata, so hits are
   * checked against their records in rounds of growing depth (4k, 16k, ...) until k pass or the
   * hits run out: a selective filter still gets its full top k.
   */
  async keywordSearch(text: string, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]> {
    const pass = compileRecordFilter(where, whereDocument);
    if (!pass) return this.keyword.search(text, k);
    const passed: KeywordHit[] = [];
    let checked = 0;
    for (let depth = k * 4; ; depth *= 4) {
      const hits = await this.keyword.search(text, depth);
      // Checked in rank order, a thousand records a call, stopping once k pass.
      for (let from = checked; from < hits.length && passed.length < k; from += 1000) {
        const fresh = hits.slice(from, from + 1000);
        const records = new Map((await this.store.getByIds(fresh.map((h) => h.id))).map((r) => [r.id, r]));
        for (const h of fresh) {
          const r = records.get(h.id);
          if (r !== undefined && pass(r.metadata, r.text)) passed.push(h);
        }
      }
      checked = hits.length;
      if (passed.length >= k || hits.length < depth) return passed.slice(0, k);
    }
  }

  async getByIds(ids: string[]): Promise<RecordText[]> {
    return this.store.getByIds(ids);
  }

  async *exportRecords(pageSize = 1000): AsyncGenerator<ExportedPage> {
    for await (const page of this.store.allRecords(pageSize, true)) {
      yield {
        ids: page.ids,
        documents: page.documents.map((d) => d ?? ''),
        metadatas: page.metadatas.map((m) => (m ?? {}) as StoreHit['metadata']),
        embeddings: page.embeddings ?? [],
      };
    }
  }

  describe(): BackendInfo {
    return { kind: this.kind, vectorIndex: 'chroma-hnsw', space: this.space, memoryMiB: null, loadMs: null };
  }

  async dispose(): Promise<void> {
    await this.keyword.close();
  }
}
