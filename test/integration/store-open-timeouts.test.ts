import { createServer, request, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';
import { openRemoteStore } from '../../src/store/store-version.js';
import { logger } from '../helpers/harness.js';

/**
 * A big store's first calls load its HNSW index from disk: at 1M x 100-d they took longer than the
 * 5 s a query may take, and every such store was refused with RAG_STORE_TIMEOUT. Opening and
 * checking a collection runs under the load's time limit; serving queries keep the per-query one.
 * A real Chroma server behind a proxy that delays every answer stands in for the slow first calls.
 */
let dir: string;
let chroma: ChromaServer;
let proxy: Server;
let proxyUrl: string;
let delayMs = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rag-t-open-timeouts-'));
  chroma = new ChromaServer({ dataDir: dir, logger, restart: false });
  await chroma.start();
  const c = await ChromaStore.client(chroma.url).createCollection({ name: 'docs', embeddingFunction: null });
  await c.add({ ids: ['a', 'b', 'c'], embeddings: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], documents: ['alpha lighthouse', 'beta volcano', 'gamma river'] });
  const target = new URL(chroma.url);
  proxy = createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (b: Buffer) => body.push(b));
    req.on('end', () => {
      setTimeout(() => {
        const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        up.on('error', () => res.destroy());
        up.end(Buffer.concat(body));
      }, delayMs);
    });
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
});
afterAll(async () => {
  await new Promise((r) => proxy?.close(r));
  await chroma?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('opening a store: the load time limit for the checks, the query limit for serving', () => {
  it('a collection whose calls take longer than a query may take still opens within the load limit; its queries keep the query limit', async () => {
    delayMs = 600;
    const opened = await openRemoteStore(proxyUrl, 'docs', { queryTimeoutMs: 300, indexLoadTimeoutMs: 20_000 });
    try {
      expect(opened.count).toBe(3);
      await expect(opened.store.query([1, 0, 0], 1)).rejects.toMatchObject({ code: 'RAG_STORE_TIMEOUT' });
      delayMs = 0;
      expect((await opened.store.query([1, 0, 0], 1))[0]?.id).toBe('a');
    } finally {
      await opened.dispose();
    }
  });

  it('calls slower than the load limit itself are refused with RAG_STORE_TIMEOUT', async () => {
    delayMs = 600;
    await expect(openRemoteStore(proxyUrl, 'docs', { queryTimeoutMs: 300, indexLoadTimeoutMs: 400 })).rejects.toMatchObject({ code: 'RAG_STORE_TIMEOUT' });
    delayMs = 0;
  });
});
