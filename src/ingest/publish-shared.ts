import { createHash } from 'node:crypto';
import { RagError } from '../errors.js';
import type { EmbeddingModel } from '../embeddings/model-loader.js';
import { ChromaStore, createCollectionWithRecords, translateChromaError, type StoreRecord } from '../store/chroma-store.js';
import { type PointerRecord, SharedRegistry, versionCollectionName } from '../store/shared-registry.js';
import { type AcceptanceSpec, canonicalAcceptance, parseAcceptance } from '../store/acceptance.js';
import { newVersionName } from './publish.js';
import type { Chunk } from './split-documents.js';

export interface SharedPublishOptions {
  /** The shared Chroma server. */
  url: string;
  /** The store name replicas follow (`STORE_NAME`). */
  name: string;
  chunks: Chunk[];
  model: EmbeddingModel;
  version?: string;
  batchSize?: number;
  /** Complete versions kept besides those in use (KEEP_VERSIONS). */
  keepVersions: number;
  /** A replica whose heartbeat is older than this no longer protects its version from GC. */
  replicaTtlMs: number;
  /**
   * The version's acceptance questions (same schema as a local acceptance.json). Validated before
   * anything is written, stored in the registry as canonical JSON before the version is complete;
   * its sha256 becomes one of the version's facts. Without them the version has no acceptance gate.
   */
  acceptance?: AcceptanceSpec;
  onProgress?: (done: number, total: number) => void;
}

export interface SharedPublishResult {
  version: string;
  collection: string;
  count: number;
  checksum: string;
  /** sha256 of the stored acceptance questions, or null. */
  acceptanceSha256: string | null;
  pointer: PointerRecord;
  deleted: string[];
}

/** sha256 over every record (id, text, vector bytes) in the order written. */
function checksumOf(hash: ReturnType<typeof createHash>, batch: StoreRecord[]): void {
  for (const r of batch) {
    hash.update(r.id).update('\0').update(r.text).update('\0');
    hash.update(Buffer.from(new Float32Array(r.embedding).buffer));
  }
}

/**
 * Publish one version to a shared Chroma: write `<name>--<version>` (marked 'building'), check its
 * count, store its acceptance questions (if any), mark it 'complete' with its facts (model, dimension,
 * count, created-at, checksum, the acceptance record's sha256), and only
 * then move the pointer, in one write. Nothing a replica serves is written to. Then collect garbage.
 */
export async function publishSharedVersion(options: SharedPublishOptions): Promise<SharedPublishResult> {
  if (options.chunks.length === 0) throw new RagError('RAG_INGEST_NO_DOCUMENTS', 'nothing to publish: 0 chunks');
  const version = options.version ?? newVersionName();
  const collection = versionCollectionName(options.name, version);
  const acceptance = options.acceptance ? canonicalAcceptance(options.acceptance) : undefined;
  if (acceptance !== undefined) parseAcceptance(acceptance, { what: 'the acceptance questions', code: 'RAG_INGEST_ACCEPTANCE_INVALID', strict: true });
  const registry = await SharedRegistry.open(options.url);
  const before = await registry.readPointer(options.name);
  const batchSize = options.batchSize ?? 256;
  const { model, chunks } = options;
  const createdAt = Date.now();
  const facts = {
    rag_name: options.name,
    rag_version: version,
    rag_created_at: createdAt,
    embedding_model: model.name,
    embedding_model_id: model.id,
    dimension: model.dimension,
    // LangChain (JS and Python) reads the distance from this key.
    'hnsw:space': 'cosine',
  };
  const hash = createHash('sha256');
  async function* batches(): AsyncGenerator<StoreRecord[]> {
    for (let i = 0; i < chunks.length; i += batchSize) {
      const slice = chunks.slice(i, i + batchSize);
      const vectors = await model.embedBatch(slice.map((c) => c.text));
      const batch = slice.map((c, j) => ({ id: c.id, text: c.text, embedding: vectors[j]!, metadata: c.metadata }));
      checksumOf(hash, batch);
      yield batch;
    }
  }
  const written = await createCollectionWithRecords({
    url: options.url,
    collection,
    records: batches(),
    metadata: { ...facts, rag_state: 'building' },
    onBatch: (n) => options.onProgress?.(n, chunks.length),
  });
  const checksum = hash.digest('hex');
  let acceptanceSha256: string | null = null;
  try {
    const handle = await registry.client.getCollection({ name: collection, embeddingFunction: null as never });
    const count = await handle.count();
    if (count !== chunks.length || written !== chunks.length) {
      throw new RagError('RAG_INGEST_FAILED', `version ${version}: ${count} records in ${collection}, expected ${chunks.length}; the pointer was not moved`);
    }
    // The acceptance record is written before the version is complete, so a complete version's
    // questions are always there; its sha256 is one of the facts a replica checks them against.
    acceptanceSha256 = acceptance !== undefined ? await registry.writeAcceptance(options.name, version, acceptance) : null;
    // modify() replaces the whole metadata: write every fact again with the final state.
    await handle.modify({
      metadata: { ...facts, rag_state: 'complete', rag_count: count, rag_checksum: checksum, ...(acceptanceSha256 ? { rag_acceptance_sha256: acceptanceSha256 } : {}) },
    });
  } catch (err) {
    throw err instanceof RagError ? err : translateChromaError(err, `completing ${collection}`, 'RAG_INGEST_FAILED');
  }
  const pointer = await registry.flipPointer(options.name, version, before?.version ?? null);
  const deleted = await registry.collectGarbage(options.name, { keep: options.keepVersions, replicaTtlMs: options.replicaTtlMs });
  return { version, collection, count: chunks.length, checksum, acceptanceSha256, pointer, deleted };
}

/** Point `name` back at the version it served before (one write). */
export async function rollbackShared(url: string, name: string): Promise<PointerRecord> {
  const registry = await SharedRegistry.open(url);
  const pointer = await registry.readPointer(name);
  if (!pointer) throw new RagError('RAG_SHARED_NO_POINTER', `"${name}" has no pointer on the shared Chroma: publish a version first`);
  if (!pointer.previous) throw new RagError('RAG_RELOAD_NO_PREVIOUS', `"${name}" has no previous version to roll back to (serving ${pointer.version})`);
  return registry.flipPointer(name, pointer.previous, pointer.version);
}

/** For tests and the CLI's summary: the store handle of the version a pointer names. */
export async function openPointedStore(url: string, pointer: PointerRecord): Promise<ChromaStore> {
  return ChromaStore.open({ url, collection: pointer.collection });
}
