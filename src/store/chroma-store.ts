import { createRequire } from 'node:module';
import type { ChromaClient, Collection, Metadata, Where } from 'chromadb';
import { RagError, type ErrorCode } from '../errors.js';
import { prefetchedPages, type CollectionRef } from './chroma-pages.js';

/**
 * The chromadb client library, loaded on first use: a start that serves from the serving index
 * cache talks to no Chroma server, and the library (with its OpenTelemetry import) is ~50 ms of
 * the start. Every use in this process goes through here, so `instanceof` sees one copy.
 */
let chromadbLib: typeof import('chromadb') | undefined;
function chromadb(): typeof import('chromadb') {
  return (chromadbLib ??= createRequire(import.meta.url)('chromadb') as typeof import('chromadb'));
}

/**
 * Loads the chromadb client library now, if not yet (a synchronous require: ~30-40 ms of this
 * thread idle, more under load). The service calls it while its first generation is built, before it
 * serves: a first version that needed no Chroma server (serving-index.bin, the index cache) would
 * otherwise leave the load to the first version read through Chroma, whose swap would then stall
 * the event loop that long while requests are served.
 */
export function loadChromaClient(): void {
  chromadb();
}

/** Whether this process has loaded the chromadb client library (tests). */
export function chromaClientLoaded(): boolean {
  return chromadbLib !== undefined;
}

export type DistanceSpace = 'cosine' | 'l2' | 'ip';

export interface StoreHit {
  id: string;
  text: string;
  /** Similarity in [-1, 1] for normalised embeddings (higher is better). */
  score: number;
  /** Raw Chroma distance (lower is better). */
  distance: number;
  metadata: Record<string, string | number | boolean | null>;
}

export interface StoreRecord {
  id: string;
  text: string;
  embedding: number[];
  metadata: Record<string, string | number | boolean>;
}

export type MetadataFilter = Record<string, unknown>;

/** Translate a chromadb failure at the edge into our catalog, keeping it as the cause. */
export function translateChromaError(err: unknown, what: string, fallback: ErrorCode = 'RAG_STORE_QUERY_FAILED'): RagError {
  if (err instanceof RagError) return err;
  if (err instanceof chromadb().ChromaConnectionError || (err instanceof Error && /fetch failed|ECONNREFUSED|ECONNRESET|socket/i.test(err.message))) {
    return new RagError('RAG_STORE_UNAVAILABLE', `${what}: the Chroma server is not reachable`, { cause: err });
  }
  if (err instanceof chromadb().ChromaNotFoundError) {
    return new RagError('RAG_STORE_COLLECTION_MISSING', `${what}: ${err.message}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new RagError(fallback, `${what}: ${message}`, { cause: err });
}

/** The where / whereDocument part of a Chroma query (left out when empty). */
function filterArgs(filter?: MetadataFilter, whereDocument?: Record<string, unknown>): { where?: Where; whereDocument?: never } {
  return {
    ...(filter && Object.keys(filter).length ? { where: filter as Where } : {}),
    ...(whereDocument ? { whereDocument: whereDocument as never } : {}),
  };
}

function parseUrl(url: string): { host: string; port: number; ssl: boolean } {
  const u = new URL(url);
  const ssl = u.protocol === 'https:';
  return { host: u.hostname, port: Number(u.port || (ssl ? 443 : 80)), ssl };
}

export function distanceToScore(space: DistanceSpace, d: number): number {
  // Embeddings are L2-normalised: l2 distance is squared, 2 - 2cos; cosine and ip are 1 - cos.
  return space === 'l2' ? 1 - d / 2 : 1 - d;
}

export interface OpenCollectionOptions {
  url: string;
  /** Wanted collection; when absent the only collection in the database is used. */
  collection?: string | undefined;
  /** Every call to the server ends within this (RAG_STORE_TIMEOUT); unset: no limit. */
  timeoutMs?: number | undefined;
}

/**
 * A handle on one Chroma collection (the only code besides ingest that talks to chromadb).
 * Embeddings are always computed by us; the collection has no embedding function.
 */
export class ChromaStore {
  private constructor(
    private readonly client: ChromaClient,
    private readonly collection: Collection,
    readonly name: string,
    readonly space: DistanceSpace,
    /** The time limit every call to the server has now (see callLimit). */
    private readonly limit: { ms: number | undefined },
  ) {}

  /**
   * Change the time limit of this handle's calls from now on: a store is opened and checked under
   * the load's limit (a big store's first calls load its HNSW index), then serves under the
   * per-query limit.
   */
  setCallTimeout(ms: number | undefined): void {
    this.limit.ms = ms;
  }

  /**
   * A client whose every HTTP call ends within timeoutMs: a stopped (SIGSTOP) or hung child
   * gives RAG_STORE_TIMEOUT instead of holding the request. chromadb 3.5 has no per-call
   * timeout, so its fetch is wrapped (the collection objects share the client's apiClient).
   */
  static client(url: string, timeoutMs?: number | { ms: number | undefined }): ChromaClient {
    const { host, port, ssl } = parseUrl(url);
    const client = new (chromadb().ChromaClient)({ host, port, ssl });
    const limit = typeof timeoutMs === 'object' ? timeoutMs : { ms: timeoutMs };
    if (typeof timeoutMs === 'object' || timeoutMs) {
      type Api = { getConfig(): { fetch?: (input: Request, init?: RequestInit) => Promise<Response> }; setConfig(c: object): void };
      const api = (client as unknown as { apiClient?: Api }).apiClient;
      const inner = api?.getConfig().fetch;
      if (api && inner) {
        api.setConfig({
          fetch: async (input: Request, init?: RequestInit) => {
            const ms = limit.ms;
            if (!ms) return inner(input, init);
            const signal = AbortSignal.timeout(ms);
            try {
              return await inner(input, { ...init, signal });
            } catch (err) {
              if (signal.aborted) throw new RagError('RAG_STORE_TIMEOUT', `the Chroma server did not answer within ${ms} ms`, { cause: err });
              throw err;
            }
          },
        });
      }
    }
    return client;
  }

  static async open(options: OpenCollectionOptions): Promise<ChromaStore> {
    const limit = { ms: options.timeoutMs };
    const client = ChromaStore.client(options.url, limit);
    let collections: Collection[];
    try {
      collections = await client.listCollections({ limit: 1000 });
    } catch (err) {
      throw translateChromaError(err, 'listing collections', 'RAG_STORE_UNAVAILABLE');
    }
    let chosen: Collection | undefined;
    if (options.collection) {
      chosen = collections.find((c) => c.name === options.collection);
      if (!chosen) {
        throw new RagError(
          'RAG_STORE_COLLECTION_MISSING',
          `collection "${options.collection}" not found (the store has ${collections.length ? collections.map((c) => `"${c.name}"`).join(', ') : 'no collections'})`,
        );
      }
    } else if (collections.length === 1) {
      chosen = collections[0];
    } else {
      throw new RagError(
        'RAG_STORE_COLLECTION_MISSING',
        collections.length === 0
          ? 'the store has no collections'
          : `the store has ${collections.length} collections (${collections.map((c) => c.name).join(', ')}); set CHROMA_COLLECTION`,
      );
    }
    const space = ChromaStore.spaceOf(chosen!);
    return new ChromaStore(client, chosen!, chosen!.name, space, limit);
  }

  private static spaceOf(c: Collection): DistanceSpace {
    const fromConfig = c.configuration?.hnsw?.space ?? (c.configuration as { spann?: { space?: string } } | undefined)?.spann?.space;
    const fromMeta = c.metadata?.['hnsw:space'];
    const s = String(fromConfig ?? fromMeta ?? 'l2');
    return s === 'cosine' || s === 'ip' ? s : 'l2';
  }

  /** Where this collection is, for a reader that talks to Chroma's REST API itself (chroma-pages.ts). */
  refAt(url: string): CollectionRef {
    return { url, tenant: this.collection.tenant, database: this.collection.database, id: this.collection.id, name: this.name };
  }

  async count(): Promise<number> {
    try {
      return await this.collection.count();
    } catch (err) {
      throw translateChromaError(err, `counting "${this.name}"`);
    }
  }

  /** Dimension of the stored vectors (read from one record), or null for an empty collection. */
  async dimension(): Promise<number | null> {
    try {
      const res = await this.collection.get({ limit: 1, include: ['embeddings' as never] });
      const e = res.embeddings?.[0];
      return e ? e.length : null;
    } catch (err) {
      throw translateChromaError(err, `reading a vector from "${this.name}"`);
    }
  }

  /** One nearest-neighbour query; `withRecords` adds texts and metadata to the distances. */
  private async runQuery(embedding: number[], k: number, withRecords: boolean, filter?: MetadataFilter, whereDocument?: Record<string, unknown>) {
    try {
      return await this.collection.query({
        queryEmbeddings: [embedding],
        nResults: k,
        ...filterArgs(filter, whereDocument),
        include: (withRecords ? ['documents', 'metadatas', 'distances'] : ['distances']) as never,
      });
    } catch (err) {
      throw translateChromaError(err, `querying "${this.name}"`);
    }
  }

  async query(embedding: number[], k: number, filter?: MetadataFilter, whereDocument?: Record<string, unknown>): Promise<StoreHit[]> {
    const res = await this.runQuery(embedding, k, true, filter, whereDocument);
    const docs = res.documents?.[0] ?? [];
    const metas = res.metadatas?.[0] ?? [];
    const dists = res.distances?.[0] ?? [];
    return (res.ids[0] ?? []).map((id, i) => {
      const distance = Number(dists[i] ?? NaN);
      return { id, text: docs[i] ?? '', distance, score: distanceToScore(this.space, distance), metadata: (metas[i] ?? {}) as StoreHit['metadata'] };
    });
  }

  /** Nearest ids and similarities only (no texts): candidates for fusion, cheaper than query(). */
  async nearestIds(embedding: number[], k: number, filter?: MetadataFilter, whereDocument?: Record<string, unknown>): Promise<Array<{ id: string; score: number }>> {
    const res = await this.runQuery(embedding, k, false, filter, whereDocument);
    const dists = res.distances?.[0] ?? [];
    return (res.ids[0] ?? []).map((id, i) => ({ id, score: distanceToScore(this.space, Number(dists[i] ?? NaN)) }));
  }

  /** Fetch records by id (texts and metadata), in the order asked. */
  async getByIds(ids: string[]): Promise<Array<Omit<StoreHit, 'score' | 'distance'>>> {
    if (ids.length === 0) return [];
    try {
      const res = await this.collection.get({ ids, include: ['documents', 'metadatas'] as never });
      const byId = new Map(res.ids.map((id, i) => [id, { id, text: res.documents[i] ?? '', metadata: (res.metadatas[i] ?? {}) as StoreHit['metadata'] }]));
      return ids.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
    } catch (err) {
      throw translateChromaError(err, `fetching records from "${this.name}"`);
    }
  }

  /** Page through every document (id + text), e.g. to build a keyword index. */
  async *allDocuments(pageSize = 1000): AsyncGenerator<Array<{ id: string; text: string; metadata: Metadata | null }>> {
    for (let offset = 0; ; offset += pageSize) {
      let res;
      try {
        res = await this.collection.get({ limit: pageSize, offset, include: ['documents', 'metadatas'] as never });
      } catch (err) {
        throw translateChromaError(err, `reading documents of "${this.name}"`);
      }
      if (res.ids.length === 0) return;
      yield res.ids.map((id, i) => ({ id, text: res.documents[i] ?? '', metadata: res.metadatas[i] ?? null }));
      if (res.ids.length < pageSize) return;
    }
  }

  /**
   * Every record, page by page, in offset order. `inFlight` pages are requested ahead of the one
   * the caller is handling: Chroma's server answers several at once on its own threads, so the
   * read is bound by its slowest stage, not by round trips. Measured on 10k records x 100-d, 2
   * cores, pages of 1,000: 470-540 ms one page ahead, ~310 ms four ahead. With `total` known no
   * page past the end is requested; without it, paging stops at the first short page.
   */
  async *allRecords(
    pageSize = 1000,
    withEmbeddings = true,
    options: { inFlight?: number; total?: number } = {},
  ): AsyncGenerator<{ ids: string[]; documents: Array<string | null>; metadatas: Array<Metadata | null>; embeddings: number[][] | null }> {
    const include = (withEmbeddings ? ['documents', 'metadatas', 'embeddings'] : ['documents', 'metadatas']) as never;
    const fetchPage = (offset: number) =>
      this.collection.get({ limit: pageSize, offset, include }).catch((err: unknown) => {
        throw translateChromaError(err, `reading records of "${this.name}"`);
      });
    for await (const res of prefetchedPages(fetchPage, pageSize, options.inFlight, options.total)) {
      yield { ids: res.ids, documents: res.documents, metadatas: res.metadatas, embeddings: withEmbeddings ? (res.embeddings as number[][]) : null };
    }
  }

  async heartbeat(): Promise<void> {
    try {
      await this.client.heartbeat();
    } catch (err) {
      throw translateChromaError(err, 'heartbeat', 'RAG_STORE_UNAVAILABLE');
    }
  }
}

/** Write side, used by the ingest CLI and tests: create a collection and add records in batches. */
export async function createCollectionWithRecords(options: {
  url: string;
  collection: string;
  records: AsyncIterable<StoreRecord[]> | Iterable<StoreRecord[]>;
  metadata?: Record<string, string | number | boolean>;
  onBatch?: (added: number) => void;
  /**
   * HNSW `sync_threshold` (Chroma writes its index to disk once an add leaves this many records
   * unwritten; the rest stay in its log, which every server that opens the store applies to the
   * index on its first call). Given, the last add holds at least this many records (the ones
   * before it are held back), so the index is written at the end and no record is left in the log.
   */
  syncThreshold?: number;
}): Promise<number> {
  const client = ChromaStore.client(options.url);
  // 0: Chroma's default, and no batch held back.
  const threshold = options.syncThreshold ? Math.max(2, Math.floor(options.syncThreshold)) : 0;
  let collection: Collection;
  try {
    collection = await client.createCollection({
      name: options.collection,
      embeddingFunction: null,
      configuration: { hnsw: { space: 'cosine', ...(threshold ? { sync_threshold: threshold, batch_size: Math.min(100, threshold) } : {}) } },
      ...(options.metadata && Object.keys(options.metadata).length ? { metadata: options.metadata } : {}),
    });
  } catch (err) {
    throw translateChromaError(err, `creating collection "${options.collection}"`, 'RAG_INGEST_FAILED');
  }
  let total = 0;
  // One batch ahead: the next batch is made (embedded, by the publisher's generator) while Chroma
  // adds this one, so both cores work (strictly one after the other, the publisher and Chroma each
  // used about half a core at 1M chunks). Adds stay in order, one at a time.
  const records = options.records;
  const it: AsyncIterator<StoreRecord[]> | Iterator<StoreRecord[]> = Symbol.asyncIterator in records ? records[Symbol.asyncIterator]() : records[Symbol.iterator]();
  let next: Promise<IteratorResult<StoreRecord[]>> = Promise.resolve(it.next());
  // Batches held back so that the last add holds at least syncThreshold records (see the option).
  // (Chroma wants 2 <= batch_size <= sync_threshold; its batch_size default is 100.)
  const held: StoreRecord[][] = [];
  let heldCount = 0;
  try {
    for (;;) {
      const step = await next;
      let batch: StoreRecord[];
      if (step.done) {
        if (heldCount === 0) break;
        batch = held.flat();
        held.length = 0;
        heldCount = 0;
      } else {
        next = Promise.resolve(it.next());
        // If the add fails, the batch being made is abandoned: its own failure is not reported twice.
        next.catch(() => undefined);
        if (step.value.length === 0) continue;
        held.push(step.value);
        heldCount += step.value.length;
        // Added once the batches after it still hold at least the threshold.
        if (heldCount - held[0]!.length < threshold) continue;
        batch = held.shift()!;
        heldCount -= batch.length;
      }
      try {
        await collection.add({
          ids: batch.map((r) => r.id),
          embeddings: batch.map((r) => r.embedding),
          documents: batch.map((r) => r.text),
          // chromadb 3.x rejects empty metadata objects
          metadatas: batch.map((r) => (Object.keys(r.metadata).length ? r.metadata : { _: 0 })),
        });
      } catch (err) {
        throw translateChromaError(err, `adding ${batch.length} records to "${options.collection}"`, 'RAG_INGEST_FAILED');
      }
      total += batch.length;
      options.onBatch?.(total);
      if (step.done) break;
    }
  } catch (err) {
    // Let the generator clean up (its finally blocks) once the batch it is making has settled.
    void next.then(() => it.return?.(), () => undefined).catch(() => undefined);
    throw err;
  }
  return total;
}
