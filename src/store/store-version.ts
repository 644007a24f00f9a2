import { cp, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { RagError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { ChromaBackend } from './chroma-backend.js';
import { ChromaServer } from './chroma-server.js';
import { ChromaStore } from './chroma-store.js';
import { InProcessBackend } from './in-process-backend.js';
import { loadRecords } from './index-loader.js';
import type { RetrievalBackend } from './retrieval-backend.js';
import { CURRENT_FILE, fingerprint, SQLITE_FILE, type StoreCandidate } from './layout.js';
import { verifyManifestFiles, type StoreManifest } from './manifest.js';
import { checkSqliteFile } from './sqlite-check.js';

/** A store version opened for serving: a private snapshot, its own Chroma child, one collection. */
export interface OpenedStore {
  version: string;
  kind: StoreCandidate['kind'] | 'remote';
  sourceDir: string | null;
  snapshotDir: string | null;
  manifest: StoreManifest | null;
  /** The retrieval seam (retrieval-backend.ts): in process, the generation's Chroma child, or a remote Chroma. */
  store: RetrievalBackend;
  /** BM25 keyword index over the same ids (shipped with the version, or built), held by a worker thread. */
  keyword: { origin: 'store' | 'built'; size: number };
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
  /** Snapshots up to this many MiB on disk are served in process (default 2048; 0: never). */
  serveIndexMaxMb?: number;
  indexLoadTimeoutMs?: number;
}

/**
 * The backend a snapshot gets: in process when its size on disk is within the budget (the
 * on-disk size bounds what the index holds: vectors, texts, metadata), else its own Chroma child.
 */
export async function chooseBackendKind(snapshotDir: string, serveIndexMaxMb: number): Promise<'in-process' | 'chroma-child'> {
  return serveIndexMaxMb > 0 && (await folderBytes(snapshotDir)) <= serveIndexMaxMb * 2 ** 20 ? 'in-process' : 'chroma-child';
}

/** Bytes of every regular file under a folder (the snapshot's size on disk). */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  }
  return total;
}

/** Niceness of the Chroma child that only loads a store into the in-process index. */
export const LOADER_NICE = 5;

let snapshotCounter = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove snapshots left behind by service processes that no longer run. */
export async function cleanStaleSnapshots(runtimeDir: string): Promise<number> {
  const root = join(runtimeDir, 'stores');
  let removed = 0;
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const pid = Number(/^p(\d+)-/.exec(name)?.[1]);
    if (pid && pid !== process.pid && !pidAlive(pid)) {
      await rm(join(root, name), { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

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

/**
 * Snapshot a store candidate into a private folder and serve it with its own Chroma child.
 * The published files are never opened by Chroma: two servers on one folder split-brain, and
 * files replaced under a running server mix rows with a stale index (environment.md).
 */
export async function openStoreVersion(candidate: StoreCandidate, options: OpenStoreOptions): Promise<OpenedStore> {
  const started = performance.now();
  const phases: Record<string, number> = {};
  let last = started;
  const mark = (name: string) => {
    const now = performance.now();
    phases[name] = Math.round(now - last);
    last = now;
  };
  const snapshotDir = join(options.runtimeDir, 'stores', `p${process.pid}-${++snapshotCounter}-${basename(candidate.version)}`);
  let server: ChromaServer | null = null;
  const cleanup = async () => {
    await server?.stop();
    await rm(snapshotDir, { recursive: true, force: true });
  };
  try {
    const skipTop = (name: string) => name.startsWith('.') || name === CURRENT_FILE;
    const before = candidate.manifest ? null : await fingerprint(candidate.dir, skipTop);
    await mkdir(join(options.runtimeDir, 'stores'), { recursive: true });
    try {
      await cp(candidate.dir, snapshotDir, {
        recursive: true,
        filter: (src) => {
          const rel = src.slice(candidate.dir.length + 1);
          return rel === '' || !skipTop(rel.split('/')[0]!);
        },
      });
    } catch (cause) {
      throw new RagError('RAG_STORE_NOT_FOUND', `cannot read the store at ${candidate.dir}: ${(cause as Error).message}`, { cause });
    }
    mark('snapshot');
    if (candidate.manifest) {
      await verifyManifestFiles(snapshotDir, candidate.manifest);
    } else if ((await fingerprint(candidate.dir, skipTop)) !== before) {
      throw new RagError('RAG_STORE_WRITE_IN_PROGRESS', `the store at ${candidate.dir} changed while it was being copied (a copy is still in progress)`);
    }
    await checkSqliteFile(join(snapshotDir, SQLITE_FILE));
    mark('verify');

    // Small enough: read the store into process memory through Chroma (the real engine stays the
    // only reader of the on-disk format), then stop the child and delete the snapshot.
    const inProcess = (await chooseBackendKind(snapshotDir, options.serveIndexMaxMb ?? 2048)) === 'in-process';
    server = new ChromaServer({
      dataDir: snapshotDir,
      logger: options.logger,
      startTimeoutMs: options.chromaStartTimeoutMs ?? 30_000,
      // A loader child yields CPU to the requests being served meanwhile, and is not restarted.
      // Nice 5 (about a third of a normal share), not 10: on a saturated machine nice 10 starved the
      // load (20 swaps under test load went from ~3 s to ~12 s each).
      ...(inProcess ? { nice: LOADER_NICE, restart: false } : {}),
    });
    try {
      await server.start();
    } catch (err) {
      throw classifyStartFailure(err);
    }
    mark('chromaStart');
    const srv = server;
    let opened;
    try {
      opened = await openCollection(srv.url, candidate.manifest?.collection ?? options.collection, candidate.manifest);
    } catch (err) {
      throw classifyReadFailure(err, srv, candidate.version);
    }
    mark('open');
    let records;
    try {
      records = await loadRecords({
        url: srv.url,
        collection: opened.store.name,
        count: opened.count,
        dimension: opened.dimension,
        withVectors: inProcess,
        keywordDir: snapshotDir,
        timeoutMs: options.indexLoadTimeoutMs ?? 600_000,
      });
    } catch (err) {
      const own = err instanceof RagError && (err.code === 'RAG_STORE_INDEX_LOAD_FAILED' || err.code === 'RAG_STORE_KEYWORD_INDEX_CORRUPT');
      throw own && srv.state === 'running' ? err : classifyReadFailure(err, srv, candidate.version);
    }
    mark(inProcess ? 'index' : 'keyword');
    let backend: RetrievalBackend;
    let dispose = cleanup;
    if (inProcess) {
      backend = await InProcessBackend.create(opened.store.name, opened.store.space, opened.dimension, records);
      // The child and the snapshot are no longer needed: queries never leave the process.
      await cleanup();
      server = null;
      dispose = () => backend.dispose();
      mark('stopLoader');
    } else {
      const chroma = new ChromaBackend('chroma-child', opened.store, records.keyword);
      backend = chroma;
      dispose = async () => {
        await chroma.dispose();
        await cleanup();
      };
    }
    return {
      version: candidate.version,
      kind: candidate.kind,
      sourceDir: candidate.dir,
      snapshotDir: inProcess ? null : snapshotDir,
      manifest: candidate.manifest,
      server: inProcess ? null : srv,
      store: backend,
      count: opened.count,
      dimension: opened.dimension,
      keyword: { origin: records.keyword.origin, size: records.keyword.size },
      openMs: Math.round(performance.now() - started),
      phases,
      dispose,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Open an existing Chroma server (CHROMA_URL): no snapshot, no child; the remote server answers queries. */
export async function openRemoteStore(url: string, collection: string | undefined, options: { indexLoadTimeoutMs?: number } = {}): Promise<OpenedStore> {
  const started = performance.now();
  const opened = await openCollection(url, collection, null);
  const records = await loadRecords({
    url,
    collection: opened.store.name,
    count: opened.count,
    dimension: opened.dimension,
    withVectors: false,
    keywordDir: null,
    timeoutMs: options.indexLoadTimeoutMs ?? 600_000,
  });
  const backend = new ChromaBackend('chroma-remote', opened.store, records.keyword);
  return {
    keyword: { origin: records.keyword.origin, size: records.keyword.size },
    version: `remote-${opened.store.name}`,
    kind: 'remote',
    sourceDir: null,
    snapshotDir: null,
    manifest: null,
    server: null,
    store: backend,
    count: opened.count,
    dimension: opened.dimension,
    openMs: Math.round(performance.now() - started),
    phases: { open: Math.round(performance.now() - started) },
    dispose: () => backend.dispose(),
  };
}

async function openCollection(
  url: string,
  collection: string | undefined,
  manifest: StoreManifest | null,
): Promise<{ store: ChromaStore; count: number; dimension: number }> {
  const store = await ChromaStore.open({ url, collection });
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
