import { Worker } from 'node:worker_threads';
import { RagError, type ErrorCode } from '../errors.js';
import type { StoreHit } from './chroma-store.js';
import type { IndexThreadData, IndexWorkerData, IndexWorkerMessage, IndexWorkerRequest, ReadTarget } from './index-worker.js';
import { MetadataColumn } from './metadata-columns.js';
import { startNicedThread, type NicedThread } from '../niced-thread.js';
import { PendingRequests } from '../pending-requests.js';
import { workerScript } from '../worker-script.js';
import { removeThreadTemps } from '../fs/cache-entry.js';
import { indexCacheDir } from './index-cache.js';
import { KEYWORD_THREAD_MIN_POSTINGS, KeywordPostings } from './keyword-postings.js';
import type { KeywordSearchReply, KeywordSearchRequest } from './keyword-search-worker.js';
import type { KeywordHit } from './retrieval-backend.js';
import { IdIndex, TextColumn } from './record-columns.js';
import { VectorRows } from './simd-kernel.js';

/** A worker script of this folder (built into dist/). */
function workerPath(name: 'index-worker' | 'keyword-search-worker'): string {
  return workerScript(import.meta.url, name, 'RAG_STORE_INDEX_LOAD_FAILED');
}

/**
 * Pages requested from Chroma at once. More is a faster swap but a harsher one for the requests
 * being served: `npm run bench:swaps -- --rate 700` (3,000 chunks, 2 cores), p99 of six swap
 * windows, 28-70 ms (median ~38) with two, 33-240 ms (median ~64) with four; the read itself
 * (10k x 100-d, idle) 470-540 ms with one ahead against ~310 ms with four. Gentleness wins.
 */
export const PAGES_IN_FLIGHT = 2;

/** Niceness of a generation's build thread (index-worker.ts): its work yields CPU to requests. */
export const BUILD_NICE = 19;

/**
 * A build thread runs this many builds, then is ended and a fresh one kept ready (1: a fresh thread
 * per build). 8 since session 23: a kept thread keeps its optimised code (its idle collection is a
 * plain full one) and its young generation is capped (BUILD_THREAD_YOUNG_MB), so a swap costs less
 * CPU and serves sooner for ~30-55 MiB of RSS (bench/results/swaps-2026-12-06-s23.md, section 5).
 */
export const BUILD_THREAD_MAX_BUILDS = 8;

/**
 * The young generation of a build thread that runs more than one build (V8's
 * `maxYoungGenerationSizeMb`): a build grows it to V8's maximum, and a kept thread held those pages
 * between builds (RSS over 100 swaps of 3,000 chunks ~345 MiB against ~305 MiB capped at 8 MiB and
 * ~276 MiB with a fresh thread per build).
 */
export const BUILD_THREAD_YOUNG_MB = 8;

/** An idle build thread is kept this long for the next build by default (LOADER_STANDBY_MS in the service). */
export const BUILD_THREAD_KEEP_MS = 60_000;

/** What a KeywordSearcher stops when its generation closes: the build job, if it still writes the cache. */
export interface BuildJobHandle {
  terminate(): Promise<unknown>;
}

/**
 * Build threads (index-worker.ts): after a successful build the used thread is kept idle for the
 * next build until it has run `maxBuilds` (BUILD_THREAD_MAX_BUILDS, 8 by default since session 23),
 * its garbage collected while idle (a plain full collection, which keeps its optimised code) and its
 * young generation capped (BUILD_THREAD_YOUNG_MB): the next build skips a thread's start (Node, the
 * imports: ~135 ms of CPU) and the recompilation of its hot code by V8's compiler threads, which run
 * at normal priority (bench/results/swaps-2026-12-06-s23.md). After its last build, or with
 * `maxBuilds` 1, it is ended and a fresh thread started and kept idle instead (the least memory:
 * ~30-55 MiB less RSS than a kept thread; `npm run swap-probe -- --chunks 3000 --swaps 100`). The
 * idle thread ends after `keepMs` without a job. A thread whose build failed, timed out or was
 * cancelled is terminated and none is started in its place.
 */
const buildThreads = {
  idle: null as { worker: NicedThread; timer: NodeJS.Timeout | null } | null,
  start(warm = false, maxBuilds = 1): NicedThread {
    // Born niced (niced-thread.ts): its start and imports yield CPU to requests too. One that may run more
    // than one build has its young generation capped: it keeps its pages between builds.
    const limits = maxBuilds > 1 ? { maxYoungGenerationSizeMb: BUILD_THREAD_YOUNG_MB } : undefined;
    const worker = startNicedThread(workerPath('index-worker'), { nice: BUILD_NICE, warm } satisfies IndexThreadData, BUILD_NICE, limits);
    worker.unref();
    // An idle thread that ends on its own is no longer kept.
    worker.once('exit', () => {
      if (this.idle?.worker === worker) {
        if (this.idle.timer) clearTimeout(this.idle.timer);
        this.idle = null;
      }
    });
    // A failure of an idle thread (it has no job to fail) only ends it.
    worker.on('error', () => undefined);
    return worker;
  },
  /** The last collections of threads kept for another build (heaps in bytes, oldest first, at most 16): tests and probes read them. */
  collections: [] as BuildThreadCollection[],
  /** Builds each live thread has run (a thread runs at most `maxBuilds`, then a fresh one replaces it). */
  builds: new WeakMap<NicedThread, number>(),
  take(maxBuilds: number): { worker: NicedThread; reused: boolean } {
    const kept = this.idle;
    if (kept) {
      this.idle = null;
      if (kept.timer) clearTimeout(kept.timer);
      return { worker: kept.worker, reused: true };
    }
    return { worker: this.start(false, maxBuilds), reused: false };
  },
  /**
   * The build on `used` succeeded: keep it for the next build if it has run fewer than `maxBuilds`,
   * else end it and keep a fresh thread ready; either waits `keepMs`.
   */
  keep(used: NicedThread, keepMs: number, maxBuilds: number): void {
    const builds = (this.builds.get(used) ?? 0) + 1;
    this.builds.set(used, builds);
    const reuse = builds < maxBuilds && !this.idle && keepMs > 0;
    if (!reuse) void used.terminate();
    // Kept for its next build: its last build's garbage is collected now, not held until then.
    else {
      used.once('message', (m: IndexWorkerMessage) => {
        if (m.type !== 'collected') return;
        this.collections.push({ seq: (this.collections.at(-1)?.seq ?? 0) + 1, ms: m.ms, heapBefore: m.heapBefore, heapAfter: m.heapAfter });
        if (this.collections.length > 16) this.collections.shift();
      });
      used.postMessage({ type: 'collect' } satisfies IndexWorkerRequest);
    }
    if (this.idle || keepMs <= 0) return;
    const worker = reuse ? used : this.start(true, maxBuilds);
    const timer = setTimeout(() => {
      if (this.idle?.worker !== worker) return;
      this.idle = null;
      void worker.terminate();
    }, keepMs);
    timer.unref();
    this.idle = { worker, timer };
  },
};

/** One garbage collection of a build thread kept for its next build (heaps in bytes). */
export interface BuildThreadCollection {
  /** 1 for the process's first collection, then one more for each. */
  seq: number;
  ms: number;
  heapBefore: number;
  heapAfter: number;
}

/** The last (at most 16) garbage collections of build threads kept for their next build, oldest first. */
export function buildThreadCollections(): readonly BuildThreadCollection[] {
  return [...buildThreads.collections];
}

/** A search on a keyword search thread that has not answered within this fails with RAG_STORE_TIMEOUT. */
export const KEYWORD_SEARCH_TIMEOUT_MS = 10_000;

/**
 * The keyword index of one generation: typed arrays (keyword-postings.ts) compiled by the build
 * thread. A small index is searched on the calling thread (tens of microseconds); one with at least
 * KEYWORD_THREAD_MIN_POSTINGS postings arrives in shared memory and is searched on a thread of its
 * own, so its milliseconds never block the event loop (a thread that dies is started again on the
 * next search). Closing it stops that thread, and the build thread if it is still writing the
 * serving index cache.
 */
export class KeywordSearcher {
  private closed = false;
  private thread: Worker | null = null;
  private readonly pending = new PendingRequests<KeywordHit[]>();

  constructor(
    private readonly postings: KeywordPostings,
    /** The build job while it still writes the serving index cache: stopped with the generation. */
    private readonly builder: BuildJobHandle | null = null,
    private readonly timeoutMs = KEYWORD_SEARCH_TIMEOUT_MS,
  ) {
    if (postings.shared) this.startThread();
  }

  get origin(): 'store' | 'built' {
    return this.postings.origin;
  }

  get size(): number {
    return this.postings.size;
  }

  /** Bytes the index holds. */
  get bytes(): number {
    return this.postings.bytes;
  }

  /** Where its searches run. */
  get searchedOn(): 'event-loop' | 'thread' {
    return this.postings.shared ? 'thread' : 'event-loop';
  }

  /** Internal document numbers (0 to this), for `allowed`. */
  get documents(): number {
    return this.postings.documents;
  }

  private startThread(): Worker {
    const thread = new Worker(workerPath('keyword-search-worker'), { workerData: { data: this.postings.data } });
    thread.unref();
    thread.on('message', (m: KeywordSearchReply) => {
      if ('error' in m) this.pending.reject(m.id, new RagError('RAG_STORE_UNAVAILABLE', `the keyword search failed: ${m.error}`));
      else this.pending.resolve(m.id, m.hits);
    });
    const gone = (why: string) => {
      if (this.thread !== thread) return;
      this.thread = null;
      this.pending.rejectAll(new RagError('RAG_STORE_UNAVAILABLE', `the keyword search thread ${why}`));
    };
    thread.once('error', (err) => gone(`failed: ${err.message}`));
    thread.once('exit', (code) => gone(`exited (code ${code})`));
    this.thread = thread;
    return thread;
  }

  /**
   * The `limit` best documents for the query (see KeywordPostings.search). With `allowed` (one byte
   * per internal document), only documents it marks 1 compete, so a selective filter still gets
   * its full top `limit`.
   */
  async search(query: string, limit: number, allowed?: Uint8Array): Promise<KeywordHit[]> {
    if (this.closed) throw new RagError('RAG_NOT_READY', 'the keyword index is closed');
    if (!this.postings.shared) return this.postings.search(query, limit, allowed ? (doc) => allowed[doc] === 1 : undefined);
    const thread = this.thread ?? this.startThread();
    return this.pending.open(
      this.timeoutMs,
      () => new RagError('RAG_STORE_TIMEOUT', `the keyword search thread did not answer within ${this.timeoutMs} ms`),
      (id) => thread.postMessage({ id, query, limit, allowed: allowed ?? null } satisfies KeywordSearchRequest),
    );
  }

  /**
   * On the calling thread, by internal document number (KeywordPostings.searchDocs: views the next
   * search reuses); null when the index is searched on its own thread.
   */
  searchDocsNow(query: string, limit: number, accept?: (doc: number) => boolean): { docs: Int32Array; scores: Float64Array } | null {
    if (this.closed) throw new RagError('RAG_NOT_READY', 'the keyword index is closed');
    return this.postings.shared ? null : this.postings.searchDocs(query, limit, accept);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending.rejectAll(new RagError('RAG_NOT_READY', 'the keyword index is closed'));
    const thread = this.thread;
    this.thread = null;
    await Promise.all([thread?.terminate(), this.builder?.terminate()]);
  }
}

/** Ids and texts of an in-process index (record-columns.ts). */
export interface RecordColumns {
  ids: IdIndex;
  documents: TextColumn;
  metadata: MetadataColumn;
  /** Per keyword index document: its row (-1: not in the collection). */
  docRow: Int32Array;
}

export interface LoadedRecords {
  /** Null when the load read no vectors (a keyword index only). */
  columns: RecordColumns | null;
  /** The rows, in the SIMD kernel's memory where it serves them (simd-kernel.ts). */
  vectors: Float32Array | VectorRows | null;
  /** Set for a cosine store: `vectors` holds unit rows and these are the rows' lengths (vector-scan.ts). */
  norms: Float32Array | null;
  keyword: KeywordSearcher;
  loadMs: number;
  /** The niceness the build thread ran at (null: it could not lower its priority). */
  buildNice: number | null;
  /** The niceness the build thread was born with (niced-thread.ts: BUILD_NICE; null: unknown, not Linux). */
  buildBornNice: number | null;
  /** Set when the records came from the serving index cache: what the entry says it holds. */
  fromCache: { version: string; collection: string; space: 'cosine' | 'l2' | 'ip'; count: number; dimension: number } | null;
  /** The build ran on a thread started ahead of it, kept ready after an earlier build (no thread start on its path). */
  buildThreadReused: boolean;
  /** The build thread's id (worker_threads threadId): a thread runs one build, the next runs on a fresh one. */
  buildThreadId: number;
  /**
   * Write the serving index cache entry this load read (LoadIndexOptions.persist) now: called once
   * its generation serves. A no-op without one, or a second time; closing `keyword` first ends it.
   */
  persist(): void;
}

export interface LoadIndexOptions {
  /**
   * The Chroma server to read and what its collection holds. A promise starts the threads at once
   * (thread start, imports, the shipped keyword index) and reads once it resolves; if it rejects,
   * the load rejects with the same error. Unused with `cache`.
   */
  target?: ReadTarget | Promise<ReadTarget>;
  withVectors: boolean;
  keywordDir: string | null;
  timeoutMs: number;
  pageSize?: number;
  /** Pages requested from Chroma ahead of the one being handled (default PAGES_IN_FLIGHT). */
  pagesInFlight?: number;
  /** Cancels the load (the worker is terminated; the promise rejects with RAG_RELOAD_SUPERSEDED). */
  signal?: AbortSignal;
  /** Read this serving index cache entry instead of Chroma (url and collection unused); a bad entry rejects with RAG_STORE_INDEX_CACHE_INVALID. */
  cache?: IndexWorkerData['cache'];
  /** After the load (from Chroma, with vectors), the worker writes it to the serving index cache and reports here. */
  persist?: IndexWorkerData['persist'];
  onCached?: (result: Extract<IndexWorkerMessage, { type: 'cached' }>) => void;
  /** Every record has been read from Chroma (not called for a cache entry): a loader child can stop now. */
  onPaged?: () => void;
  /** Keyword indexes with at least this many postings get a search thread (default KEYWORD_THREAD_MIN_POSTINGS). */
  keywordThreadMinPostings?: number;
  /** Keep the build thread this long after the build for the next one (default BUILD_THREAD_KEEP_MS; 0: it ends). */
  keepThreadMs?: number;
  /** A build thread runs at most this many builds, then a fresh one replaces it (default BUILD_THREAD_MAX_BUILDS). */
  maxBuildsPerThread?: number;
}

/**
 * Read a store out of a running Chroma server (or a serving index cache entry) with a build thread
 * at low priority (index-worker.ts): it reads ids, documents, metadata and (with `withVectors`)
 * every embedding into one contiguous Float32Array, and compiles the keyword index to typed
 * arrays (keyword-postings.ts); both are transferred, not copied. Ids, texts and metadata come as
 * columns (record-columns.ts with the id table, metadata-columns.ts): UTF-8 bytes and typed arrays,
 * all transferred. Resolves when the build is done.
 */
export function loadRecords(options: LoadIndexOptions): Promise<LoadedRecords> {
  if (!options.target && !options.cache) return Promise.reject(new RagError('RAG_STORE_INDEX_LOAD_FAILED', 'an index load needs a Chroma server or a cache entry to read'));
  const t0 = performance.now();
  // A target still to come (the server is starting) is posted to the build thread once it resolves.
  const deferred = options.target instanceof Promise && !options.cache ? options.target : null;
  const immediate = !options.target || options.target instanceof Promise ? null : options.target;
  const data: IndexWorkerData = {
    target: immediate,
    withVectors: options.withVectors,
    keywordDir: options.keywordDir,
    pageSize: options.pageSize ?? 1000,
    pagesInFlight: options.pagesInFlight ?? PAGES_IN_FLIGHT,
    cache: options.cache,
    persist: options.persist,
    keywordThreadMinPostings: options.keywordThreadMinPostings ?? KEYWORD_THREAD_MIN_POSTINGS,
  };
  const maxBuilds = options.maxBuildsPerThread ?? BUILD_THREAD_MAX_BUILDS;
  const { worker: builder, reused } = buildThreads.take(maxBuilds);
  const keepMs = options.keepThreadMs ?? BUILD_THREAD_KEEP_MS;
  let columns: RecordColumns | null = null;
  let vectors: Float32Array | VectorRows | null = null;
  let norms: Float32Array | null = null;
  let fromCache: LoadedRecords['fromCache'] = null;
  let built = false;
  let keyword: KeywordPostings | null = null;
  let buildNice: number | null = null;
  let buildBornNice: number | null = null;
  let expectCount = immediate?.count ?? options.cache?.count ?? 0;
  /** The job is over: the thread reported `idle` (it is kept or ended), or it was terminated or died. */
  let jobOver = false;
  /** The build reported a cache entry to write after it (`persist`, then `idle`). */
  let persisting = false;
  /** The load was rejected (the thread is then ended, never kept). */
  let failed = false;
  /** The thread's end when the job ended it: awaited by a generation's close, so nothing writes into RUNTIME_DIR after it. */
  let ended: Promise<void> = Promise.resolve();
  const endJob = (keepThread: boolean): Promise<void> => {
    if (jobOver) return ended;
    jobOver = true;
    builder.off('message', onMessage);
    builder.off('error', onError);
    builder.off('exit', onExit);
    if (keepThread) buildThreads.keep(builder, keepMs, maxBuilds);
    else {
      // Ended mid-write, the thread never removes its temp file: its owner does, once it is gone.
      const persistDir = options.persist ? indexCacheDir(options.persist.runtimeDir) : null;
      ended = builder
        .terminate()
        .then(() => (persistDir ? removeThreadTemps(persistDir, builder.threadId) : undefined))
        .catch(() => undefined);
    }
    return ended;
  };
  // Stops the job when its generation closes while the thread still waits to write, or writes, the cache.
  const handle: BuildJobHandle = { terminate: () => endJob(false) };
  let onMessage: (m: IndexWorkerMessage) => void = () => undefined;
  let onError: (err: Error) => void = () => undefined;
  let onExit: (code: number) => void = () => undefined;
  return new Promise<LoadedRecords>((resolve, reject) => {
    let settled = false;
    const stop = (err: unknown) => {
      if (settled) return;
      settled = true;
      failed = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      endJob(false);
      reject(err);
    };
    const fail = (code: ErrorCode, message: string, cause?: unknown) => stop(new RagError(code, message, { cause }));
    if (deferred) {
      deferred.then(
        (t) => {
          if (settled) return;
          expectCount = t.count;
          builder.postMessage({ type: 'read', ...t } satisfies IndexWorkerRequest);
        },
        (err: unknown) => stop(err),
      );
    }
    const timer = setTimeout(() => fail('RAG_STORE_INDEX_LOAD_FAILED', `reading the store into memory took longer than ${options.timeoutMs} ms`), options.timeoutMs);
    const onAbort = () => fail('RAG_RELOAD_SUPERSEDED', 'the index load was cancelled');
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = () => {
      if (settled || !built) return;
      if (!keyword) {
        fail('RAG_STORE_INDEX_LOAD_FAILED', 'the index build thread delivered no keyword index');
        return;
      }
      const want = fromCache?.count ?? expectCount;
      if (options.withVectors && (!vectors || !columns || columns.ids.ids.length !== want || columns.documents.length !== want || columns.metadata.length !== want)) {
        fail('RAG_STORE_INDEX_LOAD_FAILED', `the index worker delivered ${columns?.ids.ids.length ?? 0} of ${want} records (${columns?.metadata.length ?? 0} metadata)`);
        return;
      }
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      // The build thread writes the serving index cache when told to (persist(): once the generation
      // serves; one that is rejected never writes, nor evicts a good entry), then reports idle.
      let told = false;
      const persist = () => {
        if (told || !persisting || jobOver) return;
        told = true;
        builder.postMessage({ type: 'persist' } satisfies IndexWorkerRequest);
      };
      const searcher = new KeywordSearcher(keyword, jobOver ? null : handle);
      resolve({ columns, vectors, norms, keyword: searcher, loadMs: Math.round(performance.now() - t0), buildNice, buildBornNice, fromCache, buildThreadReused: reused, buildThreadId: builder.threadId, persist });
    };
    onMessage = (m: IndexWorkerMessage) => {
      if (m.type === 'idle') {
        endJob(settled);
        return;
      }
      if (m.type === 'cached') {
        options.onCached?.(m);
        return;
      }
      if (settled) return;
      if (m.type === 'columns') {
        try {
          // Every column was checked by the build thread (index-worker.ts sendColumns): only their ends are checked here.
          const ids = new TextColumn(m.ids, { checked: true });
          // Its entries were checked by the build thread (checkMetadataColumn).
          const metadata = new MetadataColumn(m.metadata, { checked: true });
          columns = { ids: new IdIndex(ids, m.idTable), documents: new TextColumn(m.documents, { checked: true }), metadata, docRow: m.docRow };
        } catch (err) {
          fail('RAG_STORE_INDEX_LOAD_FAILED', `the index build thread sent unusable columns: ${(err as Error).message}`, err);
        }
      } else if (m.type === 'keyword') {
        keyword = new KeywordPostings(m.data);
      } else if (m.type === 'vectors') {
        try {
          vectors = m.memory ? VectorRows.of(m.memory, m.count, m.dimension) : m.data;
          norms = m.norms;
        } catch (err) {
          fail('RAG_STORE_INDEX_LOAD_FAILED', `the index build thread sent unusable vectors: ${(err as Error).message}`, err);
        }
      } else if (m.type === 'loaded-from-cache') {
        const { type: _t, ...meta } = m;
        fromCache = meta;
      } else if (m.type === 'failed') {
        fail(m.code as ErrorCode, m.message);
      } else if (m.type === 'paged') {
        options.onPaged?.();
      } else if (m.type === 'built') {
        built = true;
        buildNice = m.nice;
        buildBornNice = m.bornNice;
        persisting = m.persisting;
        finish();
        // Nothing left to write: the thread is idle now (kept if this build succeeded).
        if (!persisting) endJob(settled && !failed);
      }
    };
    onError = (err: Error) => {
      fail('RAG_STORE_INDEX_LOAD_FAILED', `the index build thread failed: ${err.message}`, err);
      endJob(false);
    };
    onExit = (code: number) => {
      if (!built) fail('RAG_STORE_INDEX_LOAD_FAILED', `the index build thread exited (code ${code}) before the index was built`);
      endJob(false);
    };
    builder.on('message', onMessage);
    builder.once('error', onError);
    builder.once('exit', onExit);
    if (options.signal?.aborted) onAbort();
    else builder.postMessage({ type: 'job', data } satisfies IndexWorkerRequest);
  });
}
