import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { hubModelId } from '../embeddings/model-folders.js';
import type { EmbeddingModel } from '../embeddings/model-loader.js';
import type { Logger } from '../observability/logger.js';
import { ChromaServer } from '../store/chroma-server.js';
import { ChromaStore, createCollectionWithRecords, type StoreRecord } from '../store/chroma-store.js';
import { encodeIndexCache, SERVING_INDEX_FILE, servingIndexKey, type CachedIndex } from '../store/index-cache.js';
import { readAllRecords } from '../store/chroma-pages.js';
import { KEYWORD_INDEX_FILE, KeywordIndex, type KeywordAnalysis } from '../store/keyword-index.js';
import { buildKeywordText } from './keyword-build.js';

/**
 * The text a chunk is embedded as: its document title and heading path, then the chunk, so a
 * chunk from the middle of a section still carries what the section is about. The stored text
 * (what retrieval returns and the answer quotes) stays the chunk itself.
 */
export function textForEmbedding(c: { text: string; metadata: Record<string, unknown> }): string {
  const title = typeof c.metadata.title === 'string' ? c.metadata.title : '';
  const headings = typeof c.metadata.headings === 'string' ? c.metadata.headings : '';
  const context = headings.startsWith(title) ? headings : [title, headings].filter(Boolean).join(' > ');
  return context ? `${context}\n\n${c.text}` : c.text;
}

import { type AcceptanceSpec, canonicalAcceptance } from '../store/acceptance.js';
import { ACCEPTANCE_FILE, CURRENT_FILE, isValidVersionName } from '../store/layout.js';
import { describeFiles, MANIFEST_FILE, type StoreManifest } from '../store/manifest.js';
import type { Chunk } from './split-documents.js';

export interface PublishOptions {
  /** The ./vectorstore folder. */
  outDir: string;
  /** A chunk with `embedding` keeps it (an unchanged chunk of the version it came from); the others are embedded. */
  chunks: Array<Chunk & { embedding?: number[] }>;
  model: EmbeddingModel;
  logger: Logger;
  collection?: string;
  version?: string;
  documentCount?: number;
  chunking?: { chunkSize: number; chunkOverlap: number };
  batchSize?: number;
  /** Old versions to keep besides the new one (the one CURRENT named before is always kept). */
  keepVersions?: number;
  /** Point CURRENT at the new version (default true). */
  activate?: boolean;
  onProgress?: (done: number, total: number) => void;
  /** Embed each chunk with its document title and heading path in front (default true). */
  denseContext?: boolean;
  /** The version's acceptance questions: written as acceptance.json, listed in the manifest. */
  acceptance?: AcceptanceSpec;
  /**
   * Also write serving-index.bin (store/index-cache.ts: vectors, texts, metadata, keyword index),
   * listed in the manifest: the service then loads the version without a Chroma child. `true`:
   * required (a version too big to ship a keyword index for is refused); `'auto'` (the ingest CLI's
   * default): shipped whenever the keyword index is; false or absent: not shipped.
   */
  servingIndex?: boolean | 'auto';
  /** Keyword analysis (default KEYWORD_ANALYSIS); the eval's ablations change it. */
  keywordAnalysis?: KeywordAnalysis;
  /** Ship keyword-index.json only up to this many chunks (default KEYWORD_SHIP_MAX_CHUNKS). */
  keywordShipMaxChunks?: number;
}

/**
 * Above this many chunks a version ships no keyword-index.json: the service builds the same index
 * (default analysis, exact MiniSearch scores) from the texts as it reads the version, page by page
 * in typed arrays (keyword-postings.ts PostingsBuilder). Building it here as a MiniSearch object graph
 * ran this process out of its 4 GB heap at 1,000,000 chunks, and the service would have to parse
 * that JSON (hundreds of MB) back into a graph. 100,000 chunks is the largest size measured to
 * ship and load well (bench/results/swaps-2026-12-05-s8.md).
 */
export const KEYWORD_SHIP_MAX_CHUNKS = 100_000;

export interface PublishResult {
  version: string;
  dir: string;
  manifest: StoreManifest;
  pruned: string[];
  /** The version ships serving-index.bin. */
  servingIndex: boolean;
}

/**
 * The collection name LangChain's Chroma vector store (JS and Python) opens when given none, so a
 * store we publish is found by `new Chroma(embeddings, {})` / `Chroma(embedding_function=...)`.
 */
export const DEFAULT_COLLECTION = 'langchain';

export function newVersionName(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.(\d{3})Z$/, '$1Z');
  return `v${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Write a file by rename, so a reader sees the old or the new content, never half. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}

/**
 * Embed chunks and publish them as a complete store version: built in `.tmp-<version>/` with
 * its own Chroma server, stopped, described by manifest.json (sha256 of every file), renamed
 * to `<version>/`, and only then named in CURRENT (itself replaced by rename).
 */
export async function publishStoreVersion(options: PublishOptions): Promise<PublishResult> {
  const version = options.version ?? newVersionName();
  if (!isValidVersionName(version)) throw new RagError('RAG_INGEST_FAILED', `invalid version name "${version}"`);
  if (options.chunks.length === 0) throw new RagError('RAG_INGEST_NO_DOCUMENTS', 'nothing to publish: 0 chunks');
  const collection = options.collection ?? DEFAULT_COLLECTION;
  const batchSize = options.batchSize ?? 256;
  const shipMax = options.keywordShipMaxChunks ?? KEYWORD_SHIP_MAX_CHUNKS;
  const shipKeyword = options.chunks.length <= shipMax;
  if (!shipKeyword && (options.servingIndex === true || options.keywordAnalysis)) {
    throw new RagError(
      'RAG_INGEST_FAILED',
      `${options.chunks.length} chunks is above the ${shipMax} a version ships a keyword index for; ${options.servingIndex === true ? 'a serving index (--serving-index)' : 'a custom keyword analysis'} needs one`,
    );
  }
  const shipServingIndex = shipKeyword && (options.servingIndex === true || options.servingIndex === 'auto');
  await mkdir(options.outDir, { recursive: true });
  const finalDir = join(options.outDir, version);
  if (existsSync(finalDir)) throw new RagError('RAG_INGEST_FAILED', `version ${version} already exists in ${options.outDir}`);
  const tmpDir = join(options.outDir, `.tmp-${version}`);
  await rm(tmpDir, { recursive: true, force: true });
  await mkdir(tmpDir, { recursive: true });

  const server = new ChromaServer({ dataDir: tmpDir, logger: options.logger, restart: false });
  // The keyword index is built on a thread of its own while the chunks are embedded and written
  // (this may be the service's process: a document change from the console).
  const keywordBuild = shipKeyword ? buildKeywordText(options.chunks, options.keywordAnalysis) : null;
  keywordBuild?.catch(() => undefined); // awaited below; a failure elsewhere first must not leave it unhandled
  try {
    await server.start();
    const { model, chunks } = options;
    async function* batches(): AsyncGenerator<StoreRecord[]> {
      for (let i = 0; i < chunks.length; i += batchSize) {
        const slice = chunks.slice(i, i + batchSize);
        const fresh = slice.filter((c) => !c.embedding);
        const vectors = fresh.length ? await model.embedBatch(fresh.map((c) => (options.denseContext === false ? c.text : textForEmbedding(c)))) : [];
        let next = 0;
        yield slice.map((c) => ({ id: c.id, text: c.text, embedding: c.embedding ?? vectors[next++]!, metadata: c.metadata }));
      }
    }
    await createCollectionWithRecords({
      url: server.url,
      collection,
      records: batches(),
      // `hnsw:space` too (besides the cosine configuration): LangChain's Chroma (Python) picks its
      // relevance-score formula from this metadata key and assumes l2 without it.
      metadata: { 'hnsw:space': 'cosine', embedding_model: model.name, embedding_model_id: model.id, dimension: model.dimension },
      onBatch: (n) => options.onProgress?.(n, chunks.length),
      // The HNSW index written at the last add: no log tail for every loader to apply. With the
      // default a 10k store published in batches of 512 kept 785 records in the log, and every load
      // through Chroma spent ~150 ms more CPU on its first call (230 against 60 ms; /tmp/s16/tail.mjs,
      // session 16). Chroma's own threshold (1,000) for bigger stores: with one write at the end the
      // log held every record until then, and chroma.sqlite3 kept the space (13.1 -> 20.6 MB at 10k).
      syncThreshold: Math.min(1000, chunks.length),
    });
    await server.stop();
    // The keyword index ships with the version, under the same manifest checksums (up to a size).
    if (shipKeyword) {
      const keyword = await keywordBuild!;
      await writeFile(join(tmpDir, KEYWORD_INDEX_FILE), keyword.text);
      if (shipServingIndex) await writeServingIndex(tmpDir, collection, keyword.text, keyword.size, await readBack(tmpDir, collection, chunks.length, model.dimension, options.logger));
    } else {
      options.logger.info({ chunks: chunks.length, max: shipMax }, 'no keyword-index.json shipped at this size: the service builds the keyword index from the texts');
    }
    const { manifest, pruned } = await completeVersion({ ...options, tmpDir, version, collection, chunkCount: chunks.length });
    return { version, dir: finalDir, manifest, pruned, servingIndex: shipServingIndex };
  } catch (err) {
    await server.stop();
    await keywordBuild?.catch(() => undefined); // its thread ends with the job
    await rm(tmpDir, { recursive: true, force: true });
    throw err instanceof RagError ? err : new RagError('RAG_INGEST_FAILED', `publishing failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The last steps of a version built in `tmpDir` (its Chroma server stopped): acceptance.json,
 * manifest.json (sha256 of every file), the rename to `<version>/`, CURRENT (by rename) and the
 * pruning of old versions. Shared by the publisher and the Chroma-folder importer (import-chroma.ts).
 */
export async function completeVersion(o: {
  outDir: string;
  tmpDir: string;
  version: string;
  collection: string;
  model: Pick<EmbeddingModel, 'dir' | 'name' | 'id' | 'dimension'>;
  chunkCount: number;
  documentCount?: number | undefined;
  chunking?: { chunkSize: number; chunkOverlap: number } | undefined;
  acceptance?: AcceptanceSpec | undefined;
  activate?: boolean | undefined;
  keepVersions?: number | undefined;
}): Promise<{ manifest: StoreManifest; pruned: string[] }> {
  if (o.acceptance) await writeFile(join(o.tmpDir, ACCEPTANCE_FILE), canonicalAcceptance(o.acceptance) + '\n');
  const manifest: StoreManifest = {
    formatVersion: 1,
    version: o.version,
    createdAt: new Date().toISOString(),
    collection: o.collection,
    // A hub cache model is named by its hub id (org/name), which MODEL_NAME and the serving side resolve.
    embedding: { model: hubModelId(o.model.dir) ?? o.model.name, modelId: o.model.id, dimension: o.model.dimension },
    chunkCount: o.chunkCount,
    ...(o.documentCount !== undefined ? { documentCount: o.documentCount } : {}),
    ...(o.chunking ? { chunking: o.chunking } : {}),
    files: await describeFiles(o.tmpDir),
  };
  await writeFile(join(o.tmpDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  await rename(o.tmpDir, join(o.outDir, o.version));
  if (o.activate ?? true) await writeFileAtomic(join(o.outDir, CURRENT_FILE), `${o.version}\n`);
  const pruned = await pruneVersions(o.outDir, o.keepVersions ?? 3, o.version);
  return { manifest, pruned };
}

/** Delete the oldest versions beyond `keep` (never the new one, nor the one CURRENT names). */
export async function pruneVersions(outDir: string, keep: number, newest: string): Promise<string[]> {
  const current = await readFile(join(outDir, CURRENT_FILE), 'utf8').then((s) => s.trim(), () => '');
  const versions = (await readdir(outDir, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && /^v\d{8}T\d{9}Z-[0-9a-f]{4}$/.test(e.name))
    .map((e) => e.name)
    .sort();
  const removable = versions.filter((v) => v !== newest && v !== current);
  const excess = removable.slice(0, Math.max(0, versions.length - 1 - keep));
  for (const v of excess) await rm(join(outDir, v), { recursive: true, force: true });
  return excess;
}

/**
 * The records as Chroma returns them (ids, texts, metadata, vectors in its order): the shipped
 * serving index must hold exactly what a load through Chroma would, so it is read back from the
 * version's own files, not taken from the chunks.
 */
async function readBack(dir: string, collection: string, count: number, dimension: number, log: PublishOptions['logger']): Promise<Pick<CachedIndex, 'ids' | 'documents' | 'metadata' | 'vectors' | 'dimension' | 'count'>> {
  const server = new ChromaServer({ dataDir: dir, logger: log, restart: false });
  try {
    await server.start();
    const store = await ChromaStore.open({ url: server.url, collection });
    return (await readAllRecords(store.refAt(server.url), count, { dimension }))!;
  } finally {
    await server.stop();
  }
}

async function writeServingIndex(dir: string, collection: string, keywordText: string, keywordSize: number, r: Awaited<ReturnType<typeof readBack>>): Promise<void> {
  // Compiled as the service compiles the keyword-index.json beside it.
  const postings = KeywordIndex.compileText(keywordText, 'store');
  if (!postings) throw new Error('the keyword index just written does not compile');
  await writeServingIndexFile(dir, { ...r, collection, space: 'cosine', keyword: { origin: 'store', size: keywordSize }, postings });
}

/** serving-index.bin of a version being built in `dir`, keyed as the service looks it up (by what its manifest will say). */
export async function writeServingIndexFile(dir: string, index: Omit<CachedIndex, 'version'>): Promise<void> {
  const key = servingIndexKey({ collection: index.collection, chunkCount: index.count, embedding: { dimension: index.dimension } });
  await writeFile(join(dir, SERVING_INDEX_FILE), Buffer.concat(encodeIndexCache(key, { ...index, version: '' })));
}
