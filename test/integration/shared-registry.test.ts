import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishSharedVersion, rollbackShared } from '../../src/ingest/publish-shared.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore, createCollectionWithRecords } from '../../src/store/chroma-store.js';
import { SharedRegistry } from '../../src/store/shared-registry.js';
import { FIXTURES, logger, tempDir, testModel, writeEditionDocs } from '../helpers/harness.js';

/** Versioned collections behind a pointer, on one real standalone Chroma server. */
let server: ChromaServer;
let cleanup: () => Promise<void>;
let root: string;
beforeAll(async () => {
  const t = await tempDir('rag-t-shared-');
  root = t.dir;
  cleanup = t.cleanup;
  server = new ChromaServer({ dataDir: join(root, 'chroma'), logger, restart: false });
  await server.start();
});
afterAll(async () => {
  await server?.stop();
  await cleanup?.();
});

async function chunksOf(n: number) {
  const docs = await writeEditionDocs(root, n);
  const { documents } = await loadDocuments(docs);
  return splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
}

describe('publishing to a shared Chroma', () => {
  it('writes docs--<version>, marks it complete with its facts, then moves the pointer; rollback moves it back; GC keeps what is in use', async () => {
    const model = await testModel();
    const registry = await SharedRegistry.open(server.url);
    const published = [];
    for (let n = 1; n <= 4; n++) {
      const chunks = await chunksOf(n);
      const r = await publishSharedVersion({ url: server.url, name: 'docs', chunks, model, version: `v${n}`, keepVersions: 1, replicaTtlMs: 60_000 });
      published.push(r);
      expect(r.collection).toBe(`docs--v${n}`);
      expect(r.pointer).toMatchObject({ name: 'docs', version: `v${n}`, previous: n === 1 ? null : `v${n - 1}` });
      const info = await registry.versionInfo('docs', `v${n}`);
      expect(info).toMatchObject({ state: 'complete', count: chunks.length, checksum: r.checksum, modelId: model.id, dimension: model.dimension });
      // The served version answers with its own edition.
      const store = await ChromaStore.open({ url: server.url, collection: r.collection });
      const hits = await store.query((await model.embedBatch([`edition ${n} lighthouse keeper`]))[0]!, 2);
      expect(hits[0]!.text).toContain(`edition ${n}`);
      if (n === 2) {
        // A replica still serving v1 keeps it from GC while its heartbeat is fresh.
        await registry.heartbeat({ replica: 'r-old', name: 'docs', version: 'v1' });
      }
    }
    // keep 1 + pointer (v4) + previous (v3) + the live replica's v1: only v2 went.
    const names = (await registry.versions('docs')).map((v) => v.version).sort();
    expect(names).toEqual(['v1', 'v3', 'v4']);
    expect(published.flatMap((p) => p.deleted)).toEqual(['docs--v2']);

    // Rollback: one write back to the previous version.
    const back = await rollbackShared(server.url, 'docs');
    expect(back).toMatchObject({ version: 'v3', previous: 'v4' });
    expect((await registry.readPointer('docs'))!.version).toBe('v3');

    // The replica's heartbeat ages out: with a TTL shorter than its age, v1 is collected.
    await new Promise((r) => setTimeout(r, 50));
    const deleted = await registry.collectGarbage('docs', { keep: 1, replicaTtlMs: 10 });
    expect(deleted).toEqual(['docs--v1']);
  });

  it('never points at a missing or unfinished version', async () => {
    const registry = await SharedRegistry.open(server.url);
    await expect(registry.flipPointer('other', 'nope', null)).rejects.toMatchObject({ code: 'RAG_SHARED_VERSION_MISSING' });
    // A publisher that died mid-write leaves a 'building' collection: not servable.
    await createCollectionWithRecords({ url: server.url, collection: 'other--v9', records: [], metadata: { rag_state: 'building', rag_created_at: Date.now() } });
    await expect(registry.flipPointer('other', 'v9', null)).rejects.toMatchObject({ code: 'RAG_SHARED_VERSION_INCOMPLETE' });
    await expect(rollbackShared(server.url, 'other')).rejects.toMatchObject({ code: 'RAG_SHARED_NO_POINTER' });
    expect(await registry.readPointer('other')).toBeNull();
  });

  it('refuses a name Chroma cannot hold', async () => {
    const model = await testModel();
    const { documents } = await loadDocuments(join(FIXTURES, 'docs-a'));
    const chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
    await expect(publishSharedVersion({ url: server.url, name: 'bad--name', chunks, model, keepVersions: 1, replicaTtlMs: 1000 })).rejects.toMatchObject({ code: 'RAG_SHARED_INVALID_NAME' });
  });
});
