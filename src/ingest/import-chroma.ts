import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { RagError } from '../errors.js';
import type { EmbeddingModel } from '../embeddings/model-loader.js';
import { copyFileSafe } from '../fs/safe-fs.js';
import type { Logger } from '../observability/logger.js';
import { readAllRecords } from '../store/chroma-pages.js';
import { ChromaServer } from '../store/chroma-server.js';
import { ChromaStore } from '../store/chroma-store.js';
import { KEYWORD_ANALYSIS } from '../store/keyword-analysis.js';
import { PostingsBuilder, recordKeywordDoc } from '../store/keyword-postings.js';
import { describeStore, isValidVersionName, SQLITE_FILE } from '../store/layout.js';
import { checkSqliteFile } from '../store/sqlite-check.js';
import { checkAcceptanceAgainst, type AcceptanceInput } from './acceptance-file.js';
import { completeVersion, KEYWORD_SHIP_MAX_CHUNKS, newVersionName, writeServingIndexFile, type PublishResult } from './publish.js';

/**
 * `npm run ingest -- --from-chroma DIR`: publish a Chroma folder someone else built (a Python
 * LangChain `persist_directory`, a `chromadb.PersistentClient` path) as a version folder of ours,
 * with the serving index the service would build from it, so the service loads it without a Chroma
 * child: write -> serving ~0.3 s and a third of the CPU of a read through Chroma at 10,000 chunks
 * (bench/results/swaps-2026-12-06-s19.md), and its files checked against a manifest.
 *
 * The source is input like any other: walked as the service walks a flat store (store/layout.ts
 * describeStore: links out of it, FIFOs, devices and a writer's lock files refused with their codes),
 * copied file by file with the same checked opens, and never opened by Chroma itself (a server
 * writes into the folder it opens): Chroma reads the copy. A folder that changed while it was
 * copied is refused (RAG_STORE_WRITE_IN_PROGRESS). Nothing of the records is changed: ids, texts,
 * metadata, vectors and the collection's distance space are kept as Chroma returns them, and the
 * keyword index is built from the texts exactly as the service builds it for a version that ships
 * none (store/index-worker.ts), so the version answers as the source folder served in place would.
 */
export interface ImportChromaOptions {
  /** The Chroma folder (chroma.sqlite3 at its top). */
  sourceDir: string;
  /** The ./vectorstore folder. */
  outDir: string;
  /** The model the store's vectors were made with: named in the manifest, so the service loads it to embed queries. */
  model: Pick<EmbeddingModel, 'dir' | 'name' | 'id' | 'dimension'>;
  logger: Logger;
  /** The collection to publish (default: the folder's only one). */
  collection?: string | undefined;
  version?: string | undefined;
  keepVersions?: number | undefined;
  activate?: boolean | undefined;
  /** The version's acceptance questions (read and validated by the caller); every expected id must be a record id or a metadata.source of the store. */
  acceptance?: AcceptanceInput | undefined;
  /** Ship serving-index.bin up to this many records (default KEYWORD_SHIP_MAX_CHUNKS); above, the version is read through Chroma. */
  servingIndexMaxChunks?: number | undefined;
}

/** Each Chroma call of an import (a 1M-record store's first call loads its HNSW index from disk). */
const IMPORT_CALL_TIMEOUT_MS = 600_000;

export async function importChromaStore(options: ImportChromaOptions): Promise<PublishResult> {
  const source = resolve(options.sourceDir);
  const outDir = resolve(options.outDir);
  const version = options.version ?? newVersionName();
  if (!isValidVersionName(version)) throw new RagError('RAG_INGEST_FAILED', `invalid version name "${version}"`);
  if (source === outDir || outDir.startsWith(`${source}/`) || source.startsWith(`${outDir}/`)) {
    throw new RagError('RAG_INGEST_FAILED', `the Chroma folder ${source} and the vector store folder ${outDir} must not contain each other (copy the store elsewhere first)`);
  }
  // Walked and checked as the service checks a flat store; a missing folder or chroma.sqlite3 is RAG_STORE_FILE_MISSING.
  if (!existsSync(source)) throw new RagError('RAG_STORE_FILE_MISSING', `no Chroma folder at ${source}`);
  const spec = await describeStore(source, source, 'flat', null);
  if (existsSync(join(outDir, version))) throw new RagError('RAG_INGEST_FAILED', `version ${version} already exists in ${outDir}`);
  const tmpDir = join(outDir, `.tmp-${version}`);
  try {
    await mkdir(outDir, { recursive: true });
    await rm(tmpDir, { recursive: true, force: true });
    await mkdir(tmpDir, { recursive: true });
  } catch (cause) {
    throw new RagError('RAG_INGEST_FAILED', `cannot write into the vector store folder ${outDir} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); run as a user who may write there`, { cause });
  }
  const server = new ChromaServer({ dataDir: tmpDir, logger: options.logger, restart: false });
  try {
    for (const f of spec.files) {
      await mkdir(dirname(join(tmpDir, f.rel)), { recursive: true });
      await copyFileSafe(join(source, f.rel), source, join(tmpDir, f.rel), { runtimeDir: outDir });
    }
    const again = await describeStore(source, source, 'flat', null);
    if (again.fingerprint !== spec.fingerprint) {
      throw new RagError('RAG_STORE_WRITE_IN_PROGRESS', `the Chroma folder ${source} changed while it was copied (a writer is still at work); run the import again once it is done`);
    }
    // An empty, truncated or foreign chroma.sqlite3 is refused before Chroma opens it (RAG_STORE_SQLITE_CORRUPT).
    await checkSqliteFile(join(tmpDir, SQLITE_FILE));
    await server.start();
    // A call that never answers (a store Chroma cannot read) fails after the service's own load time limit.
    const store = await ChromaStore.open({ url: server.url, collection: options.collection, timeoutMs: IMPORT_CALL_TIMEOUT_MS });
    const [count, dimension] = await Promise.all([store.count(), store.dimension()]);
    if (count === 0 || dimension === null) throw new RagError('RAG_STORE_EMPTY', `collection "${store.name}" in ${source} is empty`);
    if (dimension !== options.model.dimension) {
      throw new RagError(
        'RAG_STORE_DIMENSION_MISMATCH',
        `collection "${store.name}" holds ${dimension}-d vectors but model ${options.model.name} makes ${options.model.dimension}-d ones; name the model the store was built with (--model)`,
      );
    }
    const shipIndex = count <= (options.servingIndexMaxChunks ?? KEYWORD_SHIP_MAX_CHUNKS);
    // Read as the service's build thread reads a store; the keyword index built as it builds one.
    // Neither a serving index nor acceptance questions to check: nothing to read.
    const keyword = shipIndex ? new PostingsBuilder(KEYWORD_ANALYSIS) : null;
    const known: Array<{ id: string; metadata: Record<string, unknown> }> = [];
    const records =
      shipIndex || options.acceptance
        ? await readAllRecords(store.refAt(server.url), count, {
            dimension: shipIndex ? dimension : null,
            timeoutMs: IMPORT_CALL_TIMEOUT_MS,
            onPage: (page, documents) =>
              page.ids.forEach((id, i) => {
                const metadata = page.metadatas[i] as Record<string, unknown> | null;
                keyword?.add(recordKeywordDoc(id, documents[i]!, metadata));
                if (options.acceptance) known.push({ id, metadata: metadata ?? {} });
              }),
          })
        : null;
    if (options.acceptance) checkAcceptanceAgainst(options.acceptance, known);
    await server.stop();
    if (records && keyword) {
      const postings = keyword.finish('built');
      await writeServingIndexFile(tmpDir, { ...records, collection: store.name, space: store.space, keyword: { origin: 'built', size: postings.documentCount }, postings });
    } else {
      options.logger.info({ records: count }, 'no serving-index.bin at this size: the service reads the version through Chroma');
    }
    const { manifest, pruned } = await completeVersion({ ...options, acceptance: options.acceptance?.spec, outDir, tmpDir, version, collection: store.name, chunkCount: count });
    return { version, dir: join(outDir, version), manifest, pruned, servingIndex: shipIndex };
  } catch (err) {
    await server.stop();
    await rm(tmpDir, { recursive: true, force: true });
    throw err instanceof RagError ? err : new RagError('RAG_INGEST_FAILED', `importing ${source} failed: ${(err as Error).message}`, { cause: err });
  }
}
