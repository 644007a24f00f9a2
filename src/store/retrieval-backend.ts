import type { DistanceSpace, StoreHit } from './chroma-store.js';
import type { WhereDocument, WhereFilter } from './where-filter.js';

/**
 * The retrieval seam: what rag/ asks of a generation's store, whatever answers it.
 *   in-process     the store read out of Chroma at load time into process memory (exact vector
 *                  scan + keyword index in a worker thread); Chroma is stopped after the load.
 *   chroma-child   stores above SERVE_INDEX_MAX_MB: the generation keeps its Chroma child and
 *                  queries it over HTTP (the pre-issue-13 path).
 *   chroma-remote  CHROMA_URL mode: the remote server answers.
 * One is chosen per generation at load time and shown in /admin/status.
 *
 * How a loader builds one (store-version.ts openStoreVersion does exactly this; a phased loader
 * can call the steps one by one, each with its own timeout / AbortSignal):
 *   1. snapshot + verify (unchanged);
 *   2. kind = await chooseBackendKind(snapshotDir, SERVE_INDEX_MAX_MB)        (store-version.ts)
 *   3. server = new ChromaServer({ dataDir: snapshotDir, ...(in-process ? { nice: LOADER_NICE, restart: false } : {}) })
 *   4. opened = collection checks (count, dimension, manifest)                 (store-version.ts)
 *   5. records = await loadRecords({ target: { url, collection, count, dimension }, withVectors: in-process,
 *                                    keywordDir: snapshotDir, timeoutMs, signal })   (index-loader.ts)
 *   6. in-process: backend = await InProcessBackend.create(name, space, dimension, records);
 *                  then stop the child and delete the snapshot;
 *      otherwise:  backend = new ChromaBackend('chroma-child', chromaStore, records.keyword);
 *   7. probe: backend.query(probeVector, 1); dispose: backend.dispose() (+ child and snapshot).
 */
export type BackendKind = 'in-process' | 'chroma-child' | 'chroma-remote';

export interface KeywordHit {
  id: string;
  score: number;
}

export interface RecordText {
  id: string;
  text: string;
  metadata: StoreHit['metadata'];
}

/** A fused hit (rag/hybrid.ts): `score` is the fused RRF score; each side's own score where that side found it. */
export type FusedHit = StoreHit & { denseScore?: number | undefined; keywordScore?: number | undefined };

/** Hybrid retrieval's fusion (rag/hybrid.ts fuseRanks): `candidates` from each side, the top `k` fused. */
export interface FusionRequest {
  k: number;
  candidates: number;
  weights: { dense: number; keyword: number };
  rrfK: number;
}

export interface BackendInfo {
  kind: BackendKind;
  /** Vector search: 'wasm-simd-exact' / 'usearch-exact' / 'js-exact' (in process) or 'chroma-hnsw'. */
  vectorIndex: string;
  /** In process, the SIMD kernel: 'int8' when an int8 first pass picks the rows scored exactly, else 'none'. */
  vectorFirstPass?: 'int8' | 'none';
  space: DistanceSpace;
  /** In-process only: bytes held for vectors, texts and metadata (estimate). */
  memoryMiB: number | null;
  /** How long reading the store into the serving index took (ms), when loaded in process. */
  loadMs: number | null;
  /** In process: read through a Chroma loader child, from the serving index cache (RUNTIME_DIR/index-cache), or from the serving index the version ships (serving-index.bin). */
  loadedFrom?: 'chroma' | 'index-cache' | 'serving-index';
  /** In process: the niceness its build thread ran at (null: it could not lower it, e.g. not Linux). */
  buildNice?: number | null;
  /** In process: the worker_threads id of the thread that built it (BUILD_THREAD_MAX_BUILDS builds share one). */
  buildThreadId?: number;
}

export interface RetrievalBackend {
  readonly kind: BackendKind;
  /** Collection name. */
  readonly name: string;
  readonly space: DistanceSpace;
  /** Nearest records with texts, metadata, Chroma's distance and our score, best first. */
  query(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<StoreHit[]>;
  /** Nearest ids and scores only (fusion candidates). */
  nearestIds(vector: ArrayLike<number>, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]>;
  /** BM25 hits that pass the filters, best first. */
  keywordSearch(text: string, k: number, where?: WhereFilter, whereDocument?: WhereDocument): Promise<KeywordHit[]>;
  /** Records by id, in the order asked (missing ids left out). */
  getByIds(ids: string[]): Promise<RecordText[]>;
  /**
   * Hybrid retrieval in one synchronous pass (in process: candidates by row, no id made or looked up
   * until the final k): exactly what rag/hybrid.ts makes of nearestIds, keywordSearch, fuseRanks and
   * getByIds, or null when it cannot answer so (its keyword index searched on a thread of its own).
   */
  hybridNow?(vector: ArrayLike<number>, text: string, fusion: FusionRequest, where?: WhereFilter, whereDocument?: WhereDocument): FusedHit[] | null;
  describe(): BackendInfo;
  /**
   * Every record with its vector, in pages (documents from the browser build the next version from
   * these, reusing the vectors of unchanged chunks). Absent for a remote Chroma.
   */
  exportRecords?(pageSize?: number): AsyncGenerator<ExportedPage>;
  /** Its generation serves now (called once, at the swap): work kept until then may start (the serving index cache write). */
  activated?(): void;
  dispose(): Promise<void>;
}

export interface ExportedPage {
  ids: string[];
  documents: string[];
  metadatas: Array<StoreHit['metadata']>;
  embeddings: number[][];
}
