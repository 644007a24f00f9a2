import { hostname } from 'node:os';
import type { ChromaClient, Collection } from 'chromadb';
import { RagError } from '../errors.js';
import { sha256Hex } from '../fs/fingerprint.js';
import { ChromaStore, translateChromaError } from './chroma-store.js';

/**
 * Versioned collections behind a pointer, on a shared Chroma server (Chroma has no collection
 * aliases). A store named `docs` is published as one collection per version, `docs--<version>`
 * (Chroma names allow only [A-Za-z0-9._-], so not `docs@<version>`), and a record in the
 * `rag-registry` collection points `docs` at the version replicas should serve. The pointer moves
 * in one write (an upsert of one record) and only after the version's collection is complete.
 * Replicas record what they serve in the same collection (heartbeats with a time), so garbage
 * collection never deletes a version a live replica still serves; a dead replica stops counting
 * once its heartbeat is older than the TTL.
 *
 * A version may carry acceptance questions (the shared form of a local store's acceptance.json):
 * record `acceptance/<name>/<version>` holds their canonical JSON, written before the version is
 * marked complete, and the version's collection metadata holds its sha256 (`rag_acceptance_sha256`)
 * among the version's other facts, so a replica refuses a record that was changed, truncated or
 * deleted after publishing.
 */
export const REGISTRY_COLLECTION = 'rag-registry';
const SEPARATOR = '--';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{1,200}[A-Za-z0-9]$/;
/** Registry records are looked up by id and metadata only; Chroma still wants a vector. */
const NO_VECTOR = [0];

export interface PointerRecord {
  name: string;
  version: string;
  collection: string;
  /** The version served before this one (what --rollback goes back to), or null. */
  previous: string | null;
  updatedAt: number;
  updatedBy: string;
}

export interface ReplicaHeartbeat {
  replica: string;
  name: string;
  /** The version this replica serves, or null while it serves none. */
  version: string | null;
  at: number;
}

export interface VersionInfo {
  version: string;
  collection: string;
  /** 'complete' once every record is written; a publisher that died leaves 'building'. */
  state: 'building' | 'complete' | 'unknown';
  createdAt: number;
  count: number | null;
  checksum: string | null;
  modelId: string | null;
  dimension: number | null;
  /** sha256 of the version's acceptance record (canonical JSON), or null: published without questions. */
  acceptanceSha256: string | null;
}

export function isValidStoreName(name: string): boolean {
  return NAME.test(name) && !name.includes(SEPARATOR);
}

export function versionCollectionName(name: string, version: string): string {
  const c = `${name}${SEPARATOR}${version}`;
  if (!isValidStoreName(name) || !NAME.test(c)) throw new RagError('RAG_SHARED_INVALID_NAME', `"${c}" is not a valid versioned collection name (letters, digits, . _ -; no "--" in the store name)`);
  return c;
}

/**
 * Which version collections garbage collection may delete (pure): never the one the pointer names,
 * nor its `previous` (rollback target), nor any a live replica serves, nor the newest `keep`
 * complete versions, nor a version still being built by a publisher that may be alive (younger
 * than `buildGraceMs`).
 */
export function gcPlan(input: {
  versions: VersionInfo[];
  pointer: PointerRecord | null;
  liveServed: ReadonlySet<string>;
  keep: number;
  now: number;
  buildGraceMs: number;
}): string[] {
  const protectedVersions = new Set<string>(input.liveServed);
  if (input.pointer) {
    protectedVersions.add(input.pointer.version);
    if (input.pointer.previous) protectedVersions.add(input.pointer.previous);
  }
  const complete = input.versions.filter((v) => v.state === 'complete').sort((a, b) => b.createdAt - a.createdAt || b.version.localeCompare(a.version));
  for (const v of complete.slice(0, input.keep)) protectedVersions.add(v.version);
  return input.versions
    .filter((v) => !protectedVersions.has(v.version))
    .filter((v) => v.state === 'complete' || input.now - v.createdAt > input.buildGraceMs)
    .map((v) => v.collection)
    .sort();
}

function acceptanceId(name: string, version: string): string {
  return `acceptance/${name}/${version}`;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The registry on one Chroma server: pointers, heartbeats, and the version collections of a name. */
export class SharedRegistry {
  private constructor(
    readonly client: ChromaClient,
    private readonly registry: Collection,
  ) {}

  static async open(url: string): Promise<SharedRegistry> {
    const client = ChromaStore.client(url);
    try {
      const registry = await client.getOrCreateCollection({ name: REGISTRY_COLLECTION, embeddingFunction: null, metadata: { purpose: 'rag-hot-reload pointers and replica heartbeats' } });
      return new SharedRegistry(client, registry);
    } catch (err) {
      throw translateChromaError(err, 'opening the shared registry', 'RAG_STORE_UNAVAILABLE');
    }
  }

  async readPointer(name: string): Promise<PointerRecord | null> {
    try {
      const res = await this.registry.get({ ids: [`pointer/${name}`], include: ['documents'] as never });
      const doc = res.documents[0];
      return doc ? (JSON.parse(doc) as PointerRecord) : null;
    } catch (err) {
      throw translateChromaError(err, `reading the pointer of "${name}"`, 'RAG_STORE_UNAVAILABLE');
    }
  }

  /** Move the pointer (one upsert). The version's collection must exist and be complete. */
  async flipPointer(name: string, version: string, previous: string | null): Promise<PointerRecord> {
    const info = await this.versionInfo(name, version);
    if (!info) throw new RagError('RAG_SHARED_VERSION_MISSING', `version ${version} of "${name}" does not exist on the shared Chroma (no collection ${versionCollectionName(name, version)})`);
    if (info.state !== 'complete') throw new RagError('RAG_SHARED_VERSION_INCOMPLETE', `version ${version} of "${name}" is not complete (state ${info.state}); it cannot be served`);
    const record: PointerRecord = { name, version, collection: info.collection, previous, updatedAt: Date.now(), updatedBy: `${hostname()}:${process.pid}` };
    try {
      await this.registry.upsert({ ids: [`pointer/${name}`], embeddings: [NO_VECTOR], documents: [JSON.stringify(record)], metadatas: [{ kind: 'pointer', name, version, at: record.updatedAt }] });
    } catch (err) {
      throw translateChromaError(err, `moving the pointer of "${name}"`, 'RAG_STORE_UNAVAILABLE');
    }
    return record;
  }

  /** Store a version's acceptance questions (canonical JSON); returns their sha256. Before the version is complete. */
  async writeAcceptance(name: string, version: string, text: string): Promise<string> {
    const sha256 = sha256Hex(text);
    try {
      await this.registry.upsert({
        ids: [acceptanceId(name, version)],
        embeddings: [NO_VECTOR],
        documents: [text],
        metadatas: [{ kind: 'acceptance', name, version, sha256, bytes: Buffer.byteLength(text), at: Date.now() }],
      });
    } catch (err) {
      throw translateChromaError(err, `writing the acceptance questions of ${versionCollectionName(name, version)}`, 'RAG_INGEST_FAILED');
    }
    return sha256;
  }

  /**
   * A version's acceptance questions, as published: the record must exist and its text must hash to
   * `expectedSha256`, the value the version was completed with (RAG_SHARED_ACCEPTANCE_MISSING /
   * RAG_SHARED_ACCEPTANCE_MISMATCH otherwise).
   */
  async readAcceptance(name: string, version: string, expectedSha256: string): Promise<string> {
    const collection = versionCollectionName(name, version);
    let doc: string | null | undefined;
    try {
      const res = await this.registry.get({ ids: [acceptanceId(name, version)], include: ['documents'] as never });
      doc = res.documents[0];
    } catch (err) {
      throw translateChromaError(err, `reading the acceptance questions of ${collection}`, 'RAG_STORE_UNAVAILABLE');
    }
    if (typeof doc !== 'string') {
      throw new RagError(
        'RAG_SHARED_ACCEPTANCE_MISSING',
        `version ${version} of "${name}" was published with acceptance questions (sha256 ${expectedSha256.slice(0, 12)}) but the registry has no record ${acceptanceId(name, version)}; publish the version again`,
      );
    }
    const actual = sha256Hex(doc);
    if (actual !== expectedSha256) {
      throw new RagError(
        'RAG_SHARED_ACCEPTANCE_MISMATCH',
        `the acceptance questions of version ${version} of "${name}" changed after publishing: record ${acceptanceId(name, version)} (${Buffer.byteLength(doc)} bytes) has sha256 ${actual.slice(0, 12)}, ` +
          `the version was published with ${expectedSha256.slice(0, 12)}; publish the version again`,
        { details: { expected: expectedSha256, actual } },
      );
    }
    return doc;
  }

  async heartbeat(beat: Omit<ReplicaHeartbeat, 'at'>): Promise<void> {
    const at = Date.now();
    const record: ReplicaHeartbeat = { ...beat, at };
    try {
      await this.registry.upsert({
        ids: [`replica/${beat.name}/${beat.replica}`],
        embeddings: [NO_VECTOR],
        documents: [JSON.stringify(record)],
        metadatas: [{ kind: 'replica', name: beat.name, replica: beat.replica, version: beat.version ?? '', at }],
      });
    } catch (err) {
      throw translateChromaError(err, 'writing a replica heartbeat', 'RAG_STORE_UNAVAILABLE');
    }
  }

  /** Remove this replica's heartbeat (a clean shutdown); a killed one ages out by the TTL. */
  async forgetReplica(name: string, replica: string): Promise<void> {
    try {
      await this.registry.delete({ ids: [`replica/${name}/${replica}`] });
    } catch (err) {
      throw translateChromaError(err, 'removing a replica heartbeat', 'RAG_STORE_UNAVAILABLE');
    }
  }

  async replicas(name: string): Promise<ReplicaHeartbeat[]> {
    try {
      const res = await this.registry.get({ where: { $and: [{ kind: 'replica' }, { name }] } as never, include: ['documents'] as never });
      return res.documents.flatMap((d) => (d ? [JSON.parse(d) as ReplicaHeartbeat] : []));
    } catch (err) {
      throw translateChromaError(err, 'reading replica heartbeats', 'RAG_STORE_UNAVAILABLE');
    }
  }

  private toInfo(c: Collection, name: string): VersionInfo | null {
    if (!c.name.startsWith(`${name}${SEPARATOR}`)) return null;
    const m = c.metadata ?? {};
    const state = m.rag_state === 'complete' || m.rag_state === 'building' ? m.rag_state : 'unknown';
    return {
      version: c.name.slice(name.length + SEPARATOR.length),
      collection: c.name,
      state,
      createdAt: num(m.rag_created_at) ?? 0,
      count: num(m.rag_count),
      checksum: typeof m.rag_checksum === 'string' ? m.rag_checksum : null,
      modelId: typeof m.embedding_model_id === 'string' ? m.embedding_model_id : null,
      dimension: num(m.dimension),
      acceptanceSha256: typeof m.rag_acceptance_sha256 === 'string' ? m.rag_acceptance_sha256 : null,
    };
  }

  async versions(name: string): Promise<VersionInfo[]> {
    const out: VersionInfo[] = [];
    try {
      for (let offset = 0; ; offset += 100) {
        const page = await this.client.listCollections({ limit: 100, offset });
        for (const c of page) {
          const info = this.toInfo(c, name);
          if (info) out.push(info);
        }
        if (page.length < 100) break;
      }
    } catch (err) {
      throw translateChromaError(err, `listing the versions of "${name}"`, 'RAG_STORE_UNAVAILABLE');
    }
    return out;
  }

  async versionInfo(name: string, version: string): Promise<VersionInfo | null> {
    try {
      const c = await this.client.getCollection({ name: versionCollectionName(name, version), embeddingFunction: null as never });
      return this.toInfo(c, name);
    } catch (err) {
      const e = translateChromaError(err, 'reading a version', 'RAG_STORE_UNAVAILABLE');
      if (e.code === 'RAG_STORE_COLLECTION_MISSING' || /not found|does not exist/i.test(e.message)) return null;
      throw e;
    }
  }

  /** Delete what gcPlan allows; returns the collections deleted. */
  async collectGarbage(name: string, options: { keep: number; replicaTtlMs: number; buildGraceMs?: number }): Promise<string[]> {
    const now = Date.now();
    const [versions, pointer, beats] = await Promise.all([this.versions(name), this.readPointer(name), this.replicas(name)]);
    const liveServed = new Set(beats.filter((b) => now - b.at <= options.replicaTtlMs && b.version).map((b) => b.version!));
    const doomed = gcPlan({ versions, pointer, liveServed, keep: options.keep, now, buildGraceMs: options.buildGraceMs ?? 10 * 60_000 });
    for (const c of doomed) {
      try {
        await this.client.deleteCollection({ name: c });
      } catch (err) {
        throw translateChromaError(err, `deleting ${c}`, 'RAG_STORE_UNAVAILABLE');
      }
    }
    // Acceptance records go with their version. One whose collection is gone otherwise (deleted by
    // hand) goes too, once older than the build grace (a publisher writes the collection first, but
    // another publisher's listing may predate it).
    const listed = new Map(versions.map((v) => [v.version, v.collection]));
    const grace = options.buildGraceMs ?? 10 * 60_000;
    const records = await this.registry
      .get({ where: { $and: [{ kind: 'acceptance' }, { name }] } as never, include: ['metadatas'] as never })
      .catch(() => ({ ids: [] as string[], metadatas: [] as Array<Record<string, unknown> | null> }));
    const orphans = records.ids.filter((_, i) => {
      const m = records.metadatas[i];
      const v = m?.version;
      if (typeof v !== 'string') return false;
      const c = listed.get(v);
      if (c) return doomed.includes(c);
      return now - (num(m?.at) ?? 0) > grace;
    });
    if (orphans.length) await this.registry.delete({ ids: orphans }).catch(() => undefined);
    // Heartbeats of replicas dead for ten TTLs are noise in the registry: drop them.
    const stale = beats.filter((b) => now - b.at > 10 * options.replicaTtlMs);
    if (stale.length) await this.registry.delete({ ids: stale.map((b) => `replica/${name}/${b.replica}`) }).catch(() => undefined);
    return doomed;
  }
}
