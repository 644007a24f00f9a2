import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { ChromaServer, ChromaServerEvents, liveChromaChildren } from '../../src/store/chroma-server.js';
import { ChromaStore, createCollectionWithRecords } from '../../src/store/chroma-store.js';
import { pidAlive } from '../../src/process-alive.js';

const logger = createSilentLogger();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rag-t-chroma-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('ChromaServer (real child process)', () => {
  it('starts on a free loopback port, serves a collection, and stops its child', async () => {
    const server = new ChromaServer({ dataDir: await tmp(), logger });
    cleanups.push(() => server.stop());
    await server.start();
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const pid = server.pid!;
    expect(pidAlive(pid)).toBe(true);

    const n = await createCollectionWithRecords({
      url: server.url,
      collection: 'docs',
      records: [[
        { id: 'a', text: 'alpha', embedding: [1, 0, 0], metadata: { source: 'a.md' } },
        { id: 'b', text: 'beta', embedding: [0, 1, 0], metadata: { source: 'b.md' } },
      ]],
    });
    expect(n).toBe(2);
    const store = await ChromaStore.open({ url: server.url });
    expect(store.name).toBe('docs');
    expect(store.space).toBe('cosine');
    expect(await store.count()).toBe(2);
    expect(await store.dimension()).toBe(3);
    const hits = await store.query([0.9, 0.1, 0], 2);
    expect(hits.map((h) => h.id)).toEqual(['a', 'b']);
    expect(hits[0]!.score).toBeGreaterThan(0.9);
    expect(hits[0]!.metadata.source).toBe('a.md');

    await server.stop();
    await server.stop(); // idempotent
    expect(pidAlive(pid)).toBe(false);
    expect(liveChromaChildren()).toBe(0);
  });

  it('stop() during start: the start gives up, and no child is left running, whenever the stop comes', async () => {
    for (const delayMs of [0, 30, 120, 300]) {
      const dataDir = await tmp();
      const server = new ChromaServer({ dataDir, logger });
      const started = server.start().then(
        () => 'started',
        (err: { code?: string }) => err.code,
      );
      await new Promise((r) => setTimeout(r, delayMs));
      await server.stop();
      const outcome = await started;
      expect(['started', 'RAG_CHROMA_START_FAILED']).toContain(outcome);
      expect(server.state).toBe('stopped');
      expect(liveChromaChildren()).toBe(0);
      // No process of any kind still has this data folder on its command line.
      const { execFileSync } = await import('node:child_process');
      const left = (() => {
        try {
          return execFileSync('pgrep', ['-f', dataDir], { encoding: 'utf8' }).trim();
        } catch {
          return '';
        }
      })();
      expect(left, `delay ${delayMs} ms`).toBe('');
    }
  });

  it('restarts the child after SIGKILL and keeps the data and the port', async () => {
    const server = new ChromaServer({ dataDir: await tmp(), logger });
    cleanups.push(() => server.stop());
    await server.start();
    await createCollectionWithRecords({
      url: server.url,
      collection: 'docs',
      records: [[{ id: 'a', text: 'alpha', embedding: [1, 0], metadata: { source: 'a' } }]],
    });
    const { port } = server;
    const oldPid = server.pid!;
    const exited = once(server, ChromaServerEvents.exited);
    server.killForTest('SIGKILL');
    await exited;
    expect(server.state).toBe('restarting');
    await server.waitUntilRunning(10_000);
    expect(server.restarts).toBe(1);
    expect(server.pid).not.toBe(oldPid);
    expect(server.port).toBe(port);
    const store = await ChromaStore.open({ url: server.url, collection: 'docs' });
    expect(await store.count()).toBe(1);
  });

  it('names the missing collection', async () => {
    const server = new ChromaServer({ dataDir: await tmp(), logger });
    cleanups.push(() => server.stop());
    await server.start();
    await expect(ChromaStore.open({ url: server.url, collection: 'nope' })).rejects.toMatchObject({
      code: 'RAG_STORE_COLLECTION_MISSING',
      message: 'collection "nope" not found (the store has no collections)',
    });
  });
});

describe('createCollectionWithRecords (real Chroma)', () => {
  const rec = (i: number, dim = 3) => ({ id: `r${i}`, text: `record ${i}`, embedding: Array.from({ length: dim }, (_, j) => (i + j) / 10), metadata: { i } });

  it('makes the next batch while Chroma adds this one, and adds them all in order', async () => {
    const server = new ChromaServer({ dataDir: await tmp(), logger, restart: false });
    cleanups.push(() => server.stop());
    await server.start();
    let added = 0;
    const addedWhenAsked: number[] = [];
    async function* batches() {
      for (let b = 0; b < 4; b++) {
        addedWhenAsked.push(added);
        yield Array.from({ length: 5 }, (_, i) => rec(b * 5 + i));
      }
    }
    const n = await createCollectionWithRecords({ url: server.url, collection: 'ahead', records: batches(), onBatch: (total) => (added = total) });
    expect(n).toBe(20);
    // Batch b+1 is asked for while batch b is still being added: one batch behind, not two.
    expect(addedWhenAsked).toEqual([0, 0, 5, 10]);
    const store = await ChromaStore.open({ url: server.url, collection: 'ahead' });
    expect(await store.count()).toBe(20);
    expect((await store.getByIds(['r0', 'r19'])).map((r) => r.text)).toEqual(['record 0', 'record 19']);
  });

  it('a batch that fails to be made, or to be added, fails the whole call once with its own error; the generator is closed', async () => {
    const server = new ChromaServer({ dataDir: await tmp(), logger, restart: false });
    cleanups.push(() => server.stop());
    await server.start();
    async function* failing() {
      yield [rec(0)];
      yield [rec(1)];
      throw new Error('embedding failed at batch 3');
    }
    await expect(createCollectionWithRecords({ url: server.url, collection: 'fails-making', records: failing() })).rejects.toThrow('embedding failed at batch 3');
    let closed = false;
    async function* badAdd() {
      try {
        yield [rec(0)];
        yield [rec(1, 4)]; // another dimension: Chroma refuses it
        yield [rec(2)];
        yield [rec(3)];
      } finally {
        closed = true;
      }
    }
    await expect(createCollectionWithRecords({ url: server.url, collection: 'fails-adding', records: badAdd() })).rejects.toMatchObject({ code: 'RAG_INGEST_FAILED' });
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(true);
  });
});
