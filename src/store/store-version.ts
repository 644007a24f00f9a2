import { readdir, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { readSmallFileSafe, throwIfAborted } from '../fs/safe-fs.js';
import type { Logger } from '../observability/logger.js';
import { ChromaBackend } from './chroma-backend.js';
import { ChromaServer, prepareChromaStandby } from './chroma-server.js';
import { ChromaStore } from './chroma-store.js';
import { InProcessBackend } from './in-process-backend.js';
import { sha256Hex } from '../fs/fingerprint.js';
import { ACCEPTANCE_MAX_BYTES } from './acceptance.js';
import { indexCacheFile, SERVING_INDEX_FILE, servingIndexKey, type IndexCacheKey } from './index-cache.js';
import { loadRecords, type KeywordSearcher, type LoadedRecords, type LoadIndexOptions } from './index-loader.js';
import { ACCEPTANCE_FILE, SQLITE_FILE, type StoreSpec } from './layout.js';
import type { RetrievalBackend } from './retrieval-backend.js';
import type { StoreManifest } from './manifest.js';
import { completeSnapshot, snapshotStore } from './snapshot.js';
import { checkSqliteFile } from './sqlite-check.js';
import type { ReadTarget } from './index-worker.js';

/** A store version opened for serving: one collection behind the retrieval seam. */
export interface OpenedStore {
  version: string;
  kind: StoreSpec['kind'] | 'remote';
  sourceDir: string | null;
  snapshotDir: string | null;
  manifest: StoreManifest | null;
  /**
   * The version's acceptance.json, read from the verified snapshot while it exists (an in-process
   * store deletes its snapshot once the index is built); null when the manifest lists none.
   */
  acceptanceText: string | null;
  /** The retrieval seam (retrieval-backend.ts): in process, the generation's Chroma child, or a remote Chroma. */
  store: RetrievalBackend;
  /** BM25 keyword index over the same ids (shipped with the version, or built), compiled and searched in process. */
  keyword: { origin: 'store' | 'built'; size: number; searchedOn: 'event-loop' | 'thread' };
  /** The generation's Chroma child; null when the store is served in process (the loader child is stopped) or remote. */
  server: ChromaServer | null;
  count: number;
  dimension: number;
  openMs: number;
  /** Where the open time went (ms): snapshot, verify, chromaStart, open. */
  phases: Record<string, number>;
  dispose(): Promise<void>;
}

export interface OpenStoreOptions {
  runtimeDir: string;
  logger: Logger;
  collection?: string | undefined;
  chromaStartTimeoutMs?: number;
  /** Every call to the child ends within this (RAG_STORE_TIMEOUT). */
  queryTimeoutMs?: number;
  /** Heartbeat the child this often; missed heartbeats mark it unhealthy and restart it. */
  heartbeatMs?: number;
  heartbeatMisses?: number;
  signal?: AbortSignal;
  /** Snapshots up to this many MiB on disk are served in process (default 2048; 0: never). */
  serveIndexMaxMb?: number;
  indexLoadTimeoutMs?: number;
  /**
   * After a load through a loader child, keep a warm one this long for the next (prepareChromaStandby;
   * 0: none); the idle build thread is kept as long (index-loader.ts; default BUILD_THREAD_KEEP_MS).
   */
  loaderStandbyMs?: number;
  /** A build thread runs this many builds before a fresh one replaces it (index-loader.ts; default BUILD_THREAD_MAX_BUILDS). */
  buildThreadMaxBuilds?: number;
  /**
   * Write the in-process index to the serving index cache under this key once it is loaded, if
   * `stillSame()` (the published folder's fingerprint after the copy equals the one verified) holds.
   */
  persistIndex?: { key: IndexCacheKey; stillSame: () => Promise<boolean> } | undefined;
  /**
   * The snapshot holds only serving-index.bin and acceptance.json (SnapshotOptions.copy): the
   * other files were checked where they are and are copied in only if Chroma must read them.
   */
  partialSnapshot?: boolean;
}

/** What OpenedStore says of a keyword index. */
function keywordInfo(k: KeywordSearcher): OpenedStore['keyword'] {
  return { origin: k.origin, size: k.size, searchedOn: k.searchedOn };
}

/**
 * The backend a store version gets from its size on disk (`bytes`: its files', or its snapshot's):
 * in process when within the budget (the on-disk size bounds what the index holds: vectors, texts,
 * metadata), else its own Chroma child. The one rule: the opener's cache and partial-snapshot
 * decisions (reload/loader.ts) ask it too.
 */
export function chooseBackendKind(bytes: number, serveIndexMaxMb: number): 'in-process' | 'chroma-child' {
  return serveIndexMaxMb > 0 && bytes <= serveIndexMaxMb * 2 ** 20 ? 'in-process' : 'chroma-child';
}

/** Bytes of every regular file under a folder (the private snapshot's size on disk). */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

/** Niceness of the Chroma child that only loads a store into the in-process index. */
export const LOADER_NICE = 19;

export { cleanStaleSnapshots } from './snapshot.js';

function classifyStartFailure(err: unknown): RagError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/malformed|not a database|database disk image|sqlite/i.test(msg)) {
    return new RagError('RAG_STORE_SQLITE_CORRUPT', `Chroma cannot open ${SQLITE_FILE}: ${msg.slice(0, 300)}`, { cause: err });
  }
  if (/hnsw|segment|index/i.test(msg)) {
    return new RagError('RAG_STORE_HNSW_CORRUPT', `Chroma cannot load the vector index: ${msg.slice(0, 300)}`, { cause: err });
  }
  return err instanceof RagError ? err : new RagError('RAG_CHROMA_START_FAILED', msg, { cause: err });
}

/** A store that makes Chroma fail or crash while it is read has a corrupt index or database. */
function classifyReadFailure(err: unknown, server: ChromaServer, version: string): unknown {
  const msg = err instanceof Error ? err.message : String(err);
  if (/hnsw|segment reader|pickle|index/i.test(msg)) {
    return new RagError('RAG_STORE_HNSW_CORRUPT', `the vector index of store ${version} is corrupt: ${msg.slice(0, 300)}`, { cause: err });
  }
  if (server.state !== 'running' || (err instanceof RagError && err.code === 'RAG_STORE_UNAVAILABLE')) {
    return new RagError('RAG_STORE_HNSW_CORRUPT', `the Chroma server crashed while reading store ${version} (corrupt vector index or database)`, { cause: err });
  }
  return err;
}

/** Old entry point (eval): snapshot a resolved store and open it. */
export async function openStoreVersion(spec: StoreSpec, options: OpenStoreOptions): Promise<OpenedStore> {
  const t0 = performance.now();
  const snapshotDir = await snapshotStore(spec, {
    runtimeDir: options.runtimeDir,
    recheck: async () => spec.fingerprint,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const opened = await openChromaSnapshot(spec, snapshotDir, options);
  opened.phases = { snapshot: Math.round(performance.now() - t0 - opened.openMs), ...opened.phases };
  return opened;
}

/**
 * acceptance.json of a version: from its verified snapshot, or (a start from the serving index cache,
 * which makes no snapshot) from the published folder, checked against the manifest's sha256 either
 * way. Unreadable or changed is RAG_STORE_ACCEPTANCE_INVALID.
 */
export async function readAcceptance(dir: string, spec: Pick<StoreSpec, 'version' | 'manifest'>): Promise<string | null> {
  const listed = spec.manifest?.files[ACCEPTANCE_FILE];
  if (!listed) return null;
  let text: string;
  try {
    text = await readSmallFileSafe(join(dir, ACCEPTANCE_FILE), dir, ACCEPTANCE_MAX_BYTES, { strictUtf8: true });
  } catch (cause) {
    throw new RagError('RAG_STORE_ACCEPTANCE_INVALID', `${ACCEPTANCE_FILE} of store ${spec.version} cannot be read: ${(cause as Error).message}`, { cause });
  }
  if (sha256Hex(text) !== listed.sha256) throw new RagError('RAG_STORE_ACCEPTANCE_INVALID', `${ACCEPTANCE_FILE} of store ${spec.version} changed since it was published (its sha256 differs from the manifest's)`);
  return text;
}

/**
 * The store opener: from a verified private snapshot, either read the store into process memory
 * through Chroma (a niced loader child pages out ids, vectors, texts and metadata; the child is
 * stopped and the snapshot deleted once the in-process index is built), or, above
 * SERVE_INDEX_MAX_MB, serve it with its own supervised Chroma child. Owns the snapshot from here
 * on: dispose() (or a failure, or an abort) stops the child and deletes the snapshot. The
 * published files are never opened by Chroma: two servers on one folder split-brain, and files
 * replaced under a running server mix rows with a stale index (environment.md).
 */
export async function openChromaSnapshot(
  spec: Pick<StoreSpec, 'version' | 'kind' | 'dir' | 'manifest'> & Partial<Pick<StoreSpec, 'files'>>,
  snapshotDir: string,
  options: OpenStoreOptions,
): Promise<OpenedStore> {
  const started = performance.now();
  const phases: Record<string, number> = {};
  let last = started;
  const mark = (name: string) => {
    const now = performance.now();
    phases[name] = Math.round(now - last);
    last = now;
  };
  let server: ChromaServer | null = null;
  const cleanup = async () => {
    await server?.stop();
    await rm(snapshotDir, { recursive: true, force: true });
  };
  const onAbort = () => void server?.stop();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  // Started now, awaited before the load: it is a stat walk, done long before Chroma is up.
  const stillSame = options.persistIndex?.stillSame().catch(() => false);
  try {
    throwIfAborted(options.signal);
    // A partial snapshot (SnapshotOptions.copy: a version loaded from its serving-index.bin) holds
    // no Chroma files: they were checked against the manifest where they are, and are copied only
    // if the version is read through Chroma after all (completeSnapshot below).
    const partial = options.partialSnapshot === true && spec.files !== undefined;
    await checkSqliteFile(join(partial ? spec.dir : snapshotDir, SQLITE_FILE));
    const acceptanceText = await readAcceptance(snapshotDir, spec);
    mark('verify');
    const size = partial ? storeBytes({ files: spec.files! }) : await folderBytes(snapshotDir);
    const inProcess = chooseBackendKind(size, options.serveIndexMaxMb ?? 2048) === 'in-process';
    // A serving index our publisher shipped (checked with the snapshot's other files): no Chroma child.
    if (inProcess && spec.manifest?.files[SERVING_INDEX_FILE]) {
      const manifest = spec.manifest;
      try {
        const records = await loadIndexFile(join(snapshotDir, SERVING_INDEX_FILE), servingIndexKey(manifest), manifest, options);
        const meta = records.fromCache!;
        let backend: InProcessBackend;
        try {
          if (meta.collection !== manifest.collection || meta.dimension !== manifest.embedding.dimension) {
            throw new RagError('RAG_STORE_INDEX_CACHE_INVALID', `it describes collection ${meta.collection} (${meta.dimension}-d), the manifest ${manifest.collection} (${manifest.embedding.dimension}-d)`);
          }
          backend = await InProcessBackend.create(meta.collection, meta.space, meta.dimension, records, 'serving-index');
        } catch (err) {
          await records.keyword.close();
          throw err;
        }
        mark('servingIndex');
        await cleanup();
        mark('dropSnapshot');
        return inProcessOpened(spec, backend, records, acceptanceText, Math.round(performance.now() - started), phases);
      } catch (err) {
        throwIfAborted(options.signal);
        if (!(err instanceof RagError && err.code === 'RAG_STORE_INDEX_CACHE_INVALID')) throw err;
        // Another layout version or byte order: the version is read through Chroma as if it had none.
        options.logger.warn({ store: spec.version, reason: err.message }, `${SERVING_INDEX_FILE} cannot be used; reading the version through Chroma`);
        mark('servingIndex');
      }
    }
    if (partial) {
      await completeSnapshot({ ...spec, files: spec.files! }, snapshotDir, { runtimeDir: options.runtimeDir, ...(options.signal ? { signal: options.signal } : {}) });
      await checkSqliteFile(join(snapshotDir, SQLITE_FILE));
      mark('completeSnapshot');
    }
    server = new ChromaServer({
      dataDir: snapshotDir,
      logger: options.logger,
      startTimeoutMs: options.chromaStartTimeoutMs ?? 30_000,
      // A loader child yields CPU to the requests being served meanwhile and is not restarted;
      // a serving child is heartbeated and restarted.
      ...(inProcess
        ? { nice: LOADER_NICE, restart: false }
        : { ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}), ...(options.heartbeatMisses ? { heartbeatMisses: options.heartbeatMisses } : {}) }),
    });
    const srv = server;
    let opened: Awaited<ReturnType<typeof openCollection>> | undefined;
    // The index threads start with the server: their start, imports and the shipped keyword index
    // overlap Chroma's start; they read once the collection is open. A failure here rejects the load.
    const target = (async () => {
      try {
        await srv.start();
      } catch (err) {
        throwIfAborted(options.signal);
        throw classifyStartFailure(err);
      }
      throwIfAborted(options.signal);
      mark('chromaStart');
      try {
        opened = await openCollection(srv.url, spec.manifest?.collection ?? options.collection, spec.manifest, { queryMs: options.queryTimeoutMs, loadMs: options.indexLoadTimeoutMs ?? 600_000 });
      } catch (err) {
        throwIfAborted(options.signal);
        throw classifyReadFailure(err, srv, spec.version);
      }
      mark('open');
      return readTarget(srv.url, opened);
    })();
    let records;
    // The loader child is stopped as soon as every record is read, not after the keyword index:
    // its memory is then gone before the new generation's index is loaded (peak RSS of a swap).
    let stoppedEarly = false;
    const persist = inProcess && options.persistIndex && (await stillSame) ? options.persistIndex.key : null;
    try {
      records = await loadRecords({
        target,
        withVectors: inProcess,
        keywordDir: snapshotDir,
        timeoutMs: options.indexLoadTimeoutMs ?? 600_000,
        ...(options.signal ? { signal: options.signal } : {}),
        ...buildThreadOptions(options),
        ...(inProcess ? { onPaged: () => ((stoppedEarly = true), void srv.stop()) } : {}),
        ...(persist
          ? {
              persist: { runtimeDir: options.runtimeDir, key: persist, version: spec.version },
              onCached: (r) =>
                r.ok
                  ? options.logger.info({ store: spec.version, file: r.file, bytes: r.bytes, ms: r.ms }, 'serving index cached for the next start')
                  : options.logger.warn({ store: spec.version, reason: r.reason }, 'could not write the serving index cache (serving is not affected)'),
            }
          : {}),
      });
    } catch (err) {
      throwIfAborted(options.signal);
      // Before the collection was open: a start or open failure (classified above), or the keyword
      // worker refused the shipped index while Chroma started.
      if (!opened) throw err;
      const own = err instanceof RagError && (err.code === 'RAG_STORE_INDEX_LOAD_FAILED' || err.code === 'RAG_STORE_KEYWORD_INDEX_CORRUPT');
      throw own && (srv.state === 'running' || stoppedEarly) ? err : classifyReadFailure(err, srv, spec.version);
    }
    throwIfAborted(options.signal);
    mark(inProcess ? 'index' : 'keyword');
    if (!opened) throw new RagError('RAG_STORE_INDEX_LOAD_FAILED', 'the index was loaded before its collection was opened');
    let backend: RetrievalBackend;
    let dispose = cleanup;
    if (inProcess) {
      backend = await InProcessBackend.create(opened.store.name, opened.store.space, opened.dimension, records);
      // The child and the snapshot are no longer needed: queries never leave the process. The child
      // was told to stop when its last page was read (onPaged); its exit and the snapshot's removal
      // finish while the generation already serves (the launcher rarely takes 1-2 s to exit:
      // environment.md), and dispose() waits for them, so a stop of the service still waits for
      // the child. A child that outlives even that is killed by the exit hook and the spawner host.
      const inProcessBackend = backend;
      const released = cleanup().catch((err: unknown) =>
        options.logger.warn({ store: spec.version, err: err instanceof Error ? err.message : String(err) }, 'could not stop the loader child or delete the snapshot'),
      );
      server = null;
      dispose = async () => {
        await released;
        await inProcessBackend.dispose();
      };
      mark('stopLoader');
      if (options.loaderStandbyMs) {
        const ttlMs = options.loaderStandbyMs;
        void released.then(() => prepareChromaStandby({ nice: LOADER_NICE, ttlMs })).catch(() => undefined);
      }
    } else {
      const chroma = new ChromaBackend('chroma-child', opened.store, records.keyword);
      backend = chroma;
      dispose = async () => {
        await chroma.dispose();
        await cleanup();
      };
    }
    return {
      version: spec.version,
      kind: spec.kind,
      sourceDir: spec.dir,
      snapshotDir: inProcess ? null : snapshotDir,
      manifest: spec.manifest,
      acceptanceText,
      server: inProcess ? null : srv,
      store: backend,
      count: opened.count,
      dimension: opened.dimension,
      keyword: keywordInfo(records.keyword),
      openMs: Math.round(performance.now() - started),
      phases,
      dispose,
    };
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** The store folder's total file size (its snapshot's, which holds the same files), as chooseBackendKind takes it. */
export function storeBytes(spec: Pick<StoreSpec, 'files'>): number {
  return spec.files.reduce((n, f) => n + f.size, 0);
}

export type CachedOpen = { opened: OpenedStore } | { opened: null; reason: string; invalid: boolean };

/**
 * Open a verified store version from the serving index cache (index-cache.ts): no snapshot, no
 * Chroma child. A miss (no entry) or a bad entry (truncated, corrupt, another version: `invalid`,
 * the entry is deleted) returns the reason; the caller then takes the full path.
 */
export async function openCachedIndex(
  spec: Pick<StoreSpec, 'version' | 'kind' | 'dir' | 'manifest'>,
  key: IndexCacheKey,
  options: Pick<OpenStoreOptions, 'runtimeDir' | 'indexLoadTimeoutMs' | 'signal'>,
): Promise<CachedOpen> {
  const started = performance.now();
  const file = indexCacheFile(options.runtimeDir, key);
  const s = await stat(file).catch(() => null);
  if (!s) return { opened: null, reason: 'no entry for this store version', invalid: false };
  let records: LoadedRecords;
  try {
    records = await loadIndexFile(file, key, spec.manifest, options);
  } catch (err) {
    throwIfAborted(options.signal);
    const invalid = err instanceof RagError && err.code === 'RAG_STORE_INDEX_CACHE_INVALID';
    if (invalid) await rm(file, { force: true }).catch(() => undefined);
    return { opened: null, reason: err instanceof Error ? err.message : String(err), invalid };
  }
  const meta = records.fromCache!;
  let backend: InProcessBackend;
  let acceptanceText: string | null;
  try {
    acceptanceText = await readAcceptance(spec.dir, spec);
    throwIfAborted(options.signal);
    backend = await InProcessBackend.create(meta.collection, meta.space, meta.dimension, records);
  } catch (err) {
    await records.keyword.close();
    throw err;
  }
  // Most recently used first when the cache is pruned.
  const now = new Date();
  await utimes(file, now, now).catch(() => undefined);
  const openMs = Math.round(performance.now() - started);
  return { opened: inProcessOpened(spec, backend, records, acceptanceText, openMs, { indexCache: openMs }) };
}

/** How the build thread is kept between builds (LOADER_STANDBY_MS, BUILD_THREAD_MAX_BUILDS), as loadRecords takes it. */
function buildThreadOptions(options: Pick<OpenStoreOptions, 'loaderStandbyMs' | 'buildThreadMaxBuilds'>): Pick<LoadIndexOptions, 'keepThreadMs' | 'maxBuildsPerThread'> {
  return {
    ...(options.loaderStandbyMs !== undefined ? { keepThreadMs: options.loaderStandbyMs } : {}),
    ...(options.buildThreadMaxBuilds !== undefined ? { maxBuildsPerThread: options.buildThreadMaxBuilds } : {}),
  };
}

/**
 * Read a file in the index-cache layout (a cache entry, a shipped serving index) in the build
 * thread, with no Chroma server: it must hold what the manifest counts (0: whatever it says).
 */
function loadIndexFile(file: string, key: IndexCacheKey, manifest: StoreManifest | null, options: Pick<OpenStoreOptions, 'indexLoadTimeoutMs' | 'signal' | 'loaderStandbyMs' | 'buildThreadMaxBuilds'>): Promise<LoadedRecords> {
  return loadRecords({
    withVectors: true,
    keywordDir: null,
    timeoutMs: options.indexLoadTimeoutMs ?? 600_000,
    cache: { file, key, count: manifest?.chunkCount ?? 0 },
    ...(options.signal ? { signal: options.signal } : {}),
    ...buildThreadOptions(options),
  });
}

/** A version served from process memory with no snapshot and no Chroma child (a cache entry, a shipped serving index). */
function inProcessOpened(
  spec: Pick<StoreSpec, 'version' | 'kind' | 'dir' | 'manifest'>,
  backend: InProcessBackend,
  records: LoadedRecords,
  acceptanceText: string | null,
  openMs: number,
  phases: Record<string, number>,
): OpenedStore {
  const meta = records.fromCache!;
  return {
    version: spec.version,
    kind: spec.kind,
    sourceDir: spec.dir,
    snapshotDir: null,
    manifest: spec.manifest,
    acceptanceText,
    server: null,
    store: backend,
    count: meta.count,
    dimension: meta.dimension,
    keyword: keywordInfo(records.keyword),
    openMs,
    phases,
    dispose: () => backend.dispose(),
  };
}

/** Open an existing Chroma server (CHROMA_URL): no snapshot, no child; the remote server answers queries. */
export async function openRemoteStore(
  url: string,
  collection: string | undefined,
  options: { queryTimeoutMs?: number; indexLoadTimeoutMs?: number; signal?: AbortSignal; version?: string } = {},
): Promise<OpenedStore> {
  const started = performance.now();
  const opened = await openCollection(url, collection, null, { queryMs: options.queryTimeoutMs, loadMs: options.indexLoadTimeoutMs ?? 600_000 });
  const records = await loadRecords({
    target: readTarget(url, opened),
    withVectors: false,
    keywordDir: null,
    timeoutMs: options.indexLoadTimeoutMs ?? 600_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const backend = new ChromaBackend('chroma-remote', opened.store, records.keyword);
  return {
    keyword: keywordInfo(records.keyword),
    // Shared mode names the pointer's version (what replicas report in their heartbeats).
    version: options.version ?? `remote-${opened.store.name}`,
    kind: 'remote',
    sourceDir: null,
    snapshotDir: null,
    manifest: null,
    acceptanceText: null, // shared versions keep theirs in the registry (the loader reads it there)
    server: null,
    store: backend,
    count: opened.count,
    dimension: opened.dimension,
    openMs: Math.round(performance.now() - started),
    phases: { open: Math.round(performance.now() - started) },
    dispose: () => backend.dispose(),
  };
}

/**
 * Open and check a collection. The checks run with the load's time limit: a big store's first
 * calls load its HNSW index from disk (at 1M x 100-d more than the 5 s a query may take, which
 * refused every such store with RAG_STORE_TIMEOUT). The store returned for serving queries has
 * the per-query limit.
 */
/** What the build thread reads: the opened collection, with its ref so the thread opens nothing itself. */
function readTarget(url: string, opened: { store: ChromaStore; count: number; dimension: number }): ReadTarget {
  const { tenant, database, id } = opened.store.refAt(url);
  return { url, collection: opened.store.name, count: opened.count, dimension: opened.dimension, ref: { tenant, database, id, space: opened.store.space } };
}

async function openCollection(
  url: string,
  collection: string | undefined,
  manifest: StoreManifest | null,
  timeouts: { queryMs?: number | undefined; loadMs?: number | undefined },
): Promise<{ store: ChromaStore; count: number; dimension: number }> {
  const checked = await ChromaStore.open({ url, collection, timeoutMs: timeouts.loadMs ?? timeouts.queryMs });
  // Both asked at once (one round trip to the loader child, not two); checked in this order.
  const [count, dimension] = await Promise.all([checked.count(), checked.dimension()]);
  if (count === 0) throw new RagError('RAG_STORE_EMPTY', `collection "${checked.name}" is empty`);
  if (dimension === null) throw new RagError('RAG_STORE_EMPTY', `collection "${checked.name}" has no vectors`);
  if (manifest && manifest.embedding.dimension !== dimension) {
    throw new RagError(
      'RAG_STORE_MANIFEST_INVALID',
      `manifest.json says dimension ${manifest.embedding.dimension} but the collection holds ${dimension}-d vectors`,
    );
  }
  if (manifest && manifest.chunkCount !== count) {
    throw new RagError('RAG_STORE_MANIFEST_INVALID', `manifest.json says ${manifest.chunkCount} chunks but the collection holds ${count}`);
  }
  checked.setCallTimeout(timeouts.queryMs);
  return { store: checked, count, dimension };
}
