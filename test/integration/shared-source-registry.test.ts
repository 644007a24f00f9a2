import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishSharedVersion } from '../../src/ingest/publish-shared.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import { forgetSharedRegistry, resolveAspired } from '../../src/reload/source.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { REGISTRY_COLLECTION, SharedRegistry } from '../../src/store/shared-registry.js';
import { copyModelInto, freePort, logger, tempDir, testModel, writeEditionDocs } from '../helpers/harness.js';

/**
 * The source in shared mode keeps one registry client per Chroma URL: a resolve (one per pointer
 * move) does not reopen the registry, a failed open is not kept, and a registry that went away is
 * reopened on the next resolve. Real Chroma server, real model folder.
 */
let chroma: ChromaServer;
let tmp: { dir: string; cleanup: () => Promise<void> };
let config: Parameters<typeof resolveAspired>[0];

async function publish(n: number) {
  const { documents } = await loadDocuments(await writeEditionDocs(tmp.dir, n));
  const chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
  return publishSharedVersion({ url: chroma.url, name: 'docs', chunks, model: await testModel(), version: `v${n}`, keepVersions: 3, replicaTtlMs: 60_000 });
}

beforeAll(async () => {
  tmp = await tempDir('rag-t-shared-src-');
  await copyModelInto(join(tmp.dir, 'models'));
  chroma = new ChromaServer({ dataDir: join(tmp.dir, 'chroma'), logger, restart: false });
  await chroma.start();
  await publish(1);
  config = { modelsDir: join(tmp.dir, 'models'), modelName: undefined, vectorstoreDir: join(tmp.dir, 'vectorstore'), chromaUrl: chroma.url, storeName: 'docs' };
});
afterEach(() => {
  vi.restoreAllMocks();
  forgetSharedRegistry(chroma.url);
});
afterAll(async () => {
  await chroma?.stop();
  await tmp?.cleanup();
});

describe('shared-mode source: one registry client per Chroma URL', () => {
  it('two resolves open the registry once; the second still reads the moved pointer', async () => {
    const open = vi.spyOn(SharedRegistry, 'open');
    const a = await resolveAspired(config);
    expect(a.remote).toMatchObject({ name: 'docs', version: 'v1', collection: 'docs--v1' });
    await publish(2);
    const b = await resolveAspired(config);
    expect(b.remote).toMatchObject({ version: 'v2', collection: 'docs--v2' });
    expect(b.key).not.toBe(a.key);
    await resolveAspired(config);
    // Three resolves: one open; publishSharedVersion opened its own (before: one per resolve, 4 in all).
    expect(open).toHaveBeenCalledTimes(2);
  });

  it('concurrent resolves share one open', async () => {
    const open = vi.spyOn(SharedRegistry, 'open');
    const specs = await Promise.all([resolveAspired(config), resolveAspired(config), resolveAspired(config)]);
    expect(new Set(specs.map((s) => s.key)).size).toBe(1);
    expect(open).toHaveBeenCalledTimes(1);
  });

  it('an unreachable Chroma gives RAG_STORE_UNAVAILABLE on every resolve, and each one tries again (a failure is not cached)', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const open = vi.spyOn(SharedRegistry, 'open');
    for (let i = 0; i < 2; i++) {
      const err = await resolveAspired({ ...config, chromaUrl: url }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'RAG_STORE_UNAVAILABLE', message: 'opening the shared registry: the Chroma server is not reachable' });
    }
    expect(open).toHaveBeenCalledTimes(2);
    forgetSharedRegistry(url);
  });

  it('a registry collection deleted under the cached client: that resolve fails with a code, the next one reopens it', async () => {
    await resolveAspired(config);
    const open = vi.spyOn(SharedRegistry, 'open');
    const admin = await SharedRegistry.open(chroma.url);
    await admin.client.deleteCollection({ name: REGISTRY_COLLECTION });
    const err = await resolveAspired(config).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RAG_STORE_COLLECTION_MISSING', message: expect.stringMatching(/^reading the pointer of "docs": /) });
    // Reopened (get-or-create): an empty registry, so no pointer yet.
    const again = await resolveAspired(config).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'RAG_SHARED_NO_POINTER' });
    expect(open).toHaveBeenCalledTimes(2); // the admin handle above, then the reopen
    await publish(3);
    expect((await resolveAspired(config)).remote?.version).toBe('v3');
    expect(open).toHaveBeenCalledTimes(3); // publishSharedVersion opens its own
  });
});
