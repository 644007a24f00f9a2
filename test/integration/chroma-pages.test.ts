import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { readRecordPages, type RecordPage } from '../../src/store/chroma-pages.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';

/**
 * The build thread's page reader (chroma-pages.ts) against a real Chroma server: every page gives
 * exactly what the chromadb client's `get` gives for it (the vectors as Float32Array.set stores
 * the client's numbers), and a missing collection or a stopped server is a clear error.
 */
const logger = createSilentLogger();
const N = 700;
const D = 7;
let server: ChromaServer;
let dir: string;
let store: ChromaStore;

function rand(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}
const r = rand(7);
// Values of every size Chroma writes in another form: tiny (exponent), large, negative zero, integers.
const special = [0, -0, 1e-7, -3.5e-12, 1e-40, 123456.78, -1, 2 ** -20, 0.1];
const vectors = Array.from({ length: N }, (_, i) => Array.from({ length: D }, (_, j) => (i % 11 === 0 ? special[(i + j) % special.length]! : (r() - 0.5) * 10 ** Math.floor(r() * 6 - 3))));
const docs = Array.from({ length: N }, (_, i) =>
  i % 5 === 0 ? `"embeddings":[[${i}]] ] } \\ "quoted" ünï ✓ 😀 line\nbreak` : i % 7 === 0 ? '' : `record ${i} ${'lorem '.repeat(i % 13)}`,
);
const metas = Array.from({ length: N }, (_, i) => ({ n: i, f: i / 3, ok: i % 2 === 0, s: `s-${i % 9} "q" ü` }));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rag-t-pages-'));
  server = new ChromaServer({ dataDir: dir, logger });
  await server.start();
  const client = ChromaStore.client(server.url);
  const c = await client.createCollection({ name: 'pages', embeddingFunction: null, configuration: { hnsw: { space: 'l2' } } });
  for (let i = 0; i < N; i += 300) {
    await c.add({ ids: docs.slice(i, i + 300).map((_, j) => `id-${i + j}`), embeddings: vectors.slice(i, i + 300), documents: docs.slice(i, i + 300), metadatas: metas.slice(i, i + 300) });
  }
  store = await ChromaStore.open({ url: server.url, collection: 'pages' });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function all(pages: AsyncIterable<RecordPage>): Promise<RecordPage[]> {
  const out: RecordPage[] = [];
  for await (const p of pages) out.push(p);
  return out;
}

describe('readRecordPages against a real Chroma server', () => {
  it.each([
    [256, 1],
    [256, 3],
    [700, 2],
    [1000, 2],
  ])('pages of %i (%i in flight) hold exactly what the chromadb client gets for them', async (pageSize, inFlight) => {
    const pages = await all(readRecordPages(store.refAt(server.url), { pageSize, dimension: D, inFlight, total: N }));
    expect(pages.map((p) => p.ids.length)).toEqual(Array.from({ length: Math.ceil(N / pageSize) }, (_, i) => Math.min(pageSize, N - i * pageSize)));
    const collection = (store as unknown as { collection: { get(a: object): Promise<{ ids: string[]; documents: unknown[]; metadatas: unknown[]; embeddings: number[][] }> } }).collection;
    for (const [i, page] of pages.entries()) {
      const want = await collection.get({ limit: pageSize, offset: i * pageSize, include: ['documents', 'metadatas', 'embeddings'] });
      expect(page.ids).toEqual(want.ids);
      expect(page.documents).toEqual(want.documents);
      expect(page.metadatas).toEqual(want.metadatas);
      const packed = new Float32Array(want.ids.length * D);
      want.embeddings.forEach((e, k) => packed.set(e, k * D));
      expect(Buffer.from(page.embeddings!.buffer, page.embeddings!.byteOffset, page.embeddings!.byteLength).equals(Buffer.from(packed.buffer))).toBe(true);
    }
    // Every record once, in the store's texts.
    expect(new Set(pages.flatMap((p) => p.ids)).size).toBe(N);
    expect(pages.flatMap((p) => p.documents).sort()).toEqual([...docs].sort());
  });

  it('without a dimension it reads no embeddings', async () => {
    const pages = await all(readRecordPages(store.refAt(server.url), { pageSize: 500, dimension: null, total: N }));
    expect(pages.map((p) => p.embeddings)).toEqual([null, null]);
    expect(pages.flatMap((p) => p.ids).length).toBe(N);
  });

  it('a collection that is gone is RAG_STORE_COLLECTION_MISSING; a server that is not there is RAG_STORE_UNAVAILABLE', async () => {
    const ref = store.refAt(server.url);
    await expect(all(readRecordPages({ ...ref, id: '00000000-0000-0000-0000-000000000000' }, { pageSize: 100, dimension: D }))).rejects.toMatchObject({ code: 'RAG_STORE_COLLECTION_MISSING' });
    const stopped = new ChromaServer({ dataDir: dir + '-other', logger });
    await stopped.start();
    const url = stopped.url;
    await stopped.stop();
    await rm(dir + '-other', { recursive: true, force: true });
    await expect(all(readRecordPages({ ...ref, url }, { pageSize: 100, dimension: D }))).rejects.toMatchObject({ code: 'RAG_STORE_UNAVAILABLE' });
  });

  it('an https URL (a CHROMA_URL server) is spoken to over TLS: this plain server fails the handshake; other schemes are refused', async () => {
    const ref = store.refAt(server.url.replace(/^http:/, 'https:'));
    await expect(all(readRecordPages(ref, { pageSize: 100, dimension: D }))).rejects.toMatchObject({ code: 'RAG_STORE_UNAVAILABLE', message: expect.stringMatching(/not reachable \((EPROTO|ERR_SSL|ECONNRESET)/) });
    await expect(all(readRecordPages({ ...ref, url: 'ftp://127.0.0.1:1/' }, { pageSize: 100, dimension: D }))).rejects.toMatchObject({ code: 'RAG_STORE_UNAVAILABLE', message: expect.stringContaining('not an http:// or https:// URL') });
  });
});
