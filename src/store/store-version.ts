import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { throwIfAborted } from '../fs/safe-fs.js';
import type { Logger } from '../observability/logger.js';
import { ChromaServer } from './chroma-server.js';
import { ChromaStore } from './chroma-store.js';
import { KeywordIndex } from './keyword-index.js';
import { SQLITE_FILE, type StoreSpec } from './layout.js';
import type { StoreManifest } from './manifest.js';
import { snapshotStore } from './snapshot.js';
import { checkSqliteFile } from './sqlite-check.js';

/** A store version opened for serving: a private snapshot, its own Chroma child, one collection. */
export interface OpenedStore {
  version: string;
  kind: StoreSpec['kind'] | 'remote';
  sourceDir: string | null;
  snapshotDir: string | null;
  manifest: StoreManifest | null;
  store: ChromaStore;
  /** BM25 keyword index over the same ids: shipped with the version, or built from the collection. */
  keyword: KeywordIndex;
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
}

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
 * The Chroma store opener: serve a verified private snapshot with its own Chroma child, and
 * open its collection and keyword index. Owns the snapshot from here on: dispose() (or a
 * failure, or an abort) stops the child and deletes the snapshot. The published files are
 * never opened by Chroma: two servers on one folder split-brain, and files replaced under a
 * running server mix rows with a stale index (environment.md).
 */
export async function openChromaSnapshot(
  spec: Pick<StoreSpec, 'version' | 'kind' | 'dir' | 'manifest'>,
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
  try {
    throwIfAborted(options.signal);
    await checkSqliteFile(join(snapshotDir, SQLITE_FILE));
    mark('verify');
    // The shipped keyword index loads while Chroma starts (both only read the verified snapshot).
    const shippedKeyword = KeywordIndex.load(snapshotDir);
    shippedKeyword.catch(() => undefined);
    server = new ChromaServer({
      dataDir: snapshotDir,
      logger: options.logger,
      startTimeoutMs: options.chromaStartTimeoutMs ?? 30_000,
      ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
      ...(options.heartbeatMisses ? { heartbeatMisses: options.heartbeatMisses } : {}),
    });
    try {
      await server.start();
    } catch (err) {
      throwIfAborted(options.signal);
      throw classifyStartFailure(err);
    }
    throwIfAborted(options.signal);
    mark('chromaStart');
    const srv = server;
    let opened;
    try {
      opened = await openCollection(srv.url, spec.manifest?.collection ?? options.collection, spec.manifest, options.queryTimeoutMs);
    } catch (err) {
      throwIfAborted(options.signal);
      throw classifyReadFailure(err, srv, spec.version);
    }
    mark('open');
    const keyword = (await shippedKeyword) ?? (await buildKeywordIndex(opened.store));
    throwIfAborted(options.signal);
    mark('keyword');
    return {
      version: spec.version,
      kind: spec.kind,
      sourceDir: spec.dir,
      snapshotDir,
      manifest: spec.manifest,
      server: srv,
      ...opened,
      keyword,
      openMs: Math.round(performance.now() - started),
      phases,
      dispose: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Open an existing Chroma server (CHROMA_URL): no snapshot, no child. */
export async function openRemoteStore(url: string, collection: string | undefined, queryTimeoutMs?: number): Promise<OpenedStore> {
  const started = performance.now();
  const opened = await openCollection(url, collection, null, queryTimeoutMs);
  const keyword = await buildKeywordIndex(opened.store);
  return {
    keyword,
    version: `remote-${opened.store.name}`,
    kind: 'remote',
    sourceDir: null,
    snapshotDir: null,
    manifest: null,
    server: null,
    ...opened,
    openMs: Math.round(performance.now() - started),
    phases: { open: Math.round(performance.now() - started) },
    dispose: async () => undefined,
  };
}

/** A store without a shipped index (e.g. built by Python LangChain): index its documents now. */
async function buildKeywordIndex(store: ChromaStore): Promise<KeywordIndex> {
  const docs: Array<{ id: string; text: string; title?: string }> = [];
  for await (const page of store.allDocuments()) {
    for (const d of page) docs.push({ id: d.id, text: d.text, ...(typeof d.metadata?.title === 'string' ? { title: d.metadata.title } : {}) });
  }
  return KeywordIndex.build(docs, 'built');
}

async function openCollection(
  url: string,
  collection: string | undefined,
  manifest: StoreManifest | null,
  timeoutMs?: number,
): Promise<{ store: ChromaStore; count: number; dimension: number }> {
  const store = await ChromaStore.open({ url, collection, timeoutMs });
  const count = await store.count();
  if (count === 0) throw new RagError('RAG_STORE_EMPTY', `collection "${store.name}" is empty`);
  const dimension = await store.dimension();
  if (dimension === null) throw new RagError('RAG_STORE_EMPTY', `collection "${store.name}" has no vectors`);
  if (manifest && manifest.embedding.dimension !== dimension) {
    throw new RagError(
      'RAG_STORE_MANIFEST_INVALID',
      `manifest.json says dimension ${manifest.embedding.dimension} but the collection holds ${dimension}-d vectors`,
    );
  }
  if (manifest && manifest.chunkCount !== count) {
    throw new RagError('RAG_STORE_MANIFEST_INVALID', `manifest.json says ${manifest.chunkCount} chunks but the collection holds ${count}`);
  }
  return { store, count, dimension };
}
