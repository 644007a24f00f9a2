import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';
import { openChromaSnapshot } from '../../src/store/store-version.js';
import { logger } from '../helpers/harness.js';
import { alive, chromaPidsUnder } from '../helpers/real-service.js';

/**
 * A store served in process hands its generation over while its loader child may still be
 * exiting and its snapshot being deleted (the child was told to stop when its last page was read);
 * the opened store's dispose() waits for both, so a stop of the service never leaves the child or
 * the snapshot behind it. A real Chroma server makes the store; the opener's own loader child reads
 * it. ChromaServer.stop is slowed by 1.5 s here (a launcher slow to exit, as seen once in CI).
 */
const SLOW_STOP_MS = 1_500;
const roots: string[] = [];
afterAll(async () => {
  for (const root of roots) {
    for (const pid of await chromaPidsUnder(root)) process.kill(pid, 'SIGKILL');
    await rm(root, { recursive: true, force: true });
  }
});

/** A flat store of n records in `<root>/snapshot`, written by a Chroma server that has stopped. */
async function storeIn(root: string, n: number): Promise<string> {
  const dir = join(root, 'snapshot');
  const writer = new ChromaServer({ dataDir: dir, logger, restart: false });
  await writer.start();
  try {
    const c = await ChromaStore.client(writer.url).createCollection({ name: 'docs', embeddingFunction: null });
    await c.add({
      ids: Array.from({ length: n }, (_, i) => `id-${i}`),
      embeddings: Array.from({ length: n }, (_, i) => [1, i % 7, i % 3]),
      documents: Array.from({ length: n }, (_, i) => `lighthouse record ${i}`),
    });
  } finally {
    await writer.stop();
  }
  return dir;
}

describe('the loader child of an in-process store is released after the generation is handed over', () => {
  it('dispose() resolves only once the loader child has exited and the snapshot is gone', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rag-t-loader-release-'));
    roots.push(root);
    const snapshotDir = await storeIn(root, 40);
    const seen = new Set<number>();
    // One /proc scan at a time (a scan every 5 ms regardless piled up behind a busy thread pool and,
    // once, none finished while the child ran), the last one awaited before `seen` is read: the
    // loader child outlives the open by SLOW_STOP_MS, so that scan sees it.
    let watching = true;
    const scanning = (async () => {
      while (watching) {
        for (const p of await chromaPidsUnder(root)) seen.add(p);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const stop = ChromaServer.prototype.stop;
    let stopsDone = 0;
    const slowStop = vi.spyOn(ChromaServer.prototype, 'stop').mockImplementation(async function (this: ChromaServer) {
      await new Promise((r) => setTimeout(r, SLOW_STOP_MS));
      await stop.call(this);
      stopsDone++;
    });
    let opened;
    const t0 = performance.now();
    try {
      opened = await openChromaSnapshot({ version: 'v1', kind: 'flat', dir: snapshotDir, manifest: null }, snapshotDir, {
        runtimeDir: root,
        logger,
        collection: 'docs',
        serveIndexMaxMb: 64,
        indexLoadTimeoutMs: 60_000,
      });
    } finally {
      watching = false;
      await scanning;
    }
    const openMs = performance.now() - t0;
    // Handed over before the loader child's stop has finished: serving does not wait for it.
    expect(slowStop).toHaveBeenCalled();
    expect(stopsDone, `open took ${Math.round(openMs)} ms`).toBe(0);
    expect(existsSync(snapshotDir)).toBe(true);
    expect(opened.server).toBeNull();
    expect(opened.store.describe()).toMatchObject({ kind: 'in-process' });
    expect(opened.count).toBe(40);
    const hits = await opened.store.query([1, 3, 0], 3);
    expect(hits).toHaveLength(3);
    // The loader child ran on the snapshot (seen while it read), and the opener no longer owns it.
    expect(seen.size).toBeGreaterThan(0);
    await opened.dispose();
    slowStop.mockRestore();
    expect(stopsDone).toBeGreaterThan(0);
    expect(existsSync(snapshotDir)).toBe(false);
    for (const pid of seen) expect(alive(pid), `loader child ${pid} still runs after dispose()`).toBe(false);
    expect(await chromaPidsUnder(root)).toEqual([]);
  }, 90_000);
});
