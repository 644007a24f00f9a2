import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { liveChromaChildren } from '../../src/store/chroma-server.js';
import { chromaProcessesUnder, getJson, postJson, publishDocs, startTestService, tempDir, waitFor, writeEditionDocs, type TestService } from '../helpers/harness.js';

const SWAPS = 20;

describe('hot reload: 20 swaps under load (real watcher, real files, real Chroma children)', () => {
  let svc: TestService;
  let docsRoot: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    docsRoot = await tempDir('rag-t-editions-');
    // A build thread runs up to 4 builds here (the default, 1, is what every other suite runs).
    svc = await startTestService({ env: { WATCH: 'true', BUILD_THREAD_MAX_BUILDS: '4' }, docs: await writeEditionDocs(docsRoot.dir, 0) });
  });
  afterAll(async () => {
    await svc?.stop();
    await docsRoot?.cleanup();
  });

  it('every response is 200 and from exactly one store version; after each swap new requests see the new version', async () => {
    const editionOf = new Map<string, number>();
    const first = (await getJson(`${svc.url}/admin/status`)).active.store;
    editionOf.set(first.version, 0);
    const buildThreads: number[] = [first.backend.buildThreadId];

    type Seen = { status: number; version: string; editions: number[] };
    const seen: Seen[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse keeper lamp wick sourdough starter', k: 4 });
        seen.push({
          status: res.status,
          version: res.body?.generation?.storeVersion,
          editions: (res.body?.sources ?? []).map((s: { metadata: { source: string } }) => Number(/^e(\d+)-/.exec(s.metadata.source)?.[1])),
        });
      }
    };
    const workers = Array.from({ length: 4 }, worker);

    for (let n = 1; n <= SWAPS; n++) {
      const version = `edition-${String(n).padStart(3, '0')}`;
      editionOf.set(version, n);
      await publishDocs(svc.dirs.store, await writeEditionDocs(docsRoot.dir, n), { version });
      const store = await waitFor(async () => {
        const active = (await getJson(`${svc.url}/admin/status`)).active?.store;
        return active?.version === version ? active : null;
      }, 20_000, `swap to ${version}`);
      buildThreads.push(store.backend.buildThreadId);
      // A request that starts after the swap sees the new version.
      const after = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse keeper', k: 2 });
      expect(after.status).toBe(200);
      expect(after.body.generation.storeVersion).toBe(version);
      expect(after.body.sources.every((s: { metadata: { source: string } }) => s.metadata.source.startsWith(`e${n}-`))).toBe(true);
    }
    stop = true;
    await Promise.all(workers);

    // BUILD_THREAD_MAX_BUILDS=4: consecutive builds share a thread, 4 at most, then a fresh one.
    const runs: number[] = [];
    buildThreads.forEach((id, i) => (i > 0 && id === buildThreads[i - 1] ? runs[runs.length - 1]!++ : runs.push(1)));
    expect(new Set(buildThreads).size, `build threads ${buildThreads.join(',')}`).toBe(runs.length);
    expect(Math.max(...runs), `build threads ${buildThreads.join(',')}`).toBe(4);
    expect(buildThreads.every((id) => id > 0)).toBe(true);

    expect(seen.length).toBeGreaterThan(100);
    const failed = seen.filter((s) => s.status !== 200);
    expect(failed).toEqual([]);
    for (const s of seen) {
      const edition = editionOf.get(s.version);
      expect(edition, `unknown version ${s.version}`).toBeTypeOf('number');
      expect(s.editions.length).toBe(2); // each edition has two one-chunk documents
      // Never mixed: every source of a response comes from the version that response reports.
      expect(new Set(s.editions)).toEqual(new Set([edition]));
    }
    const versionsSeen = new Set(seen.map((s) => s.version));
    expect(versionsSeen.size).toBeGreaterThan(SWAPS / 2);

    const status = await getJson(`${svc.url}/admin/status`);
    const accepted = status.history.filter((a: { outcome: string }) => a.outcome === 'accepted');
    expect(accepted.length).toBeGreaterThanOrEqual(SWAPS);
    expect(status.history.filter((a: { outcome: string }) => a.outcome === 'rejected')).toEqual([]);

    // No Chroma child outlives its generation: small stores are served in process, so once the
    // last loader stopped no child is left at all.
    expect(status.active.store.backend.kind).toBe('in-process');
    await waitFor(() => liveChromaChildren() === 0, 15_000, 'loader children to be stopped');
    expect(chromaProcessesUnder(svc.dirs.runtime)).toBe(0);
  }, 240_000);

  it('rolls back to the previous good version and stays there until a newer one is published', async () => {
    const before = await getJson(`${svc.url}/admin/status`);
    const current = before.active.store.version;
    const previous = before.previous.storeVersion;
    expect(previous).not.toBe(current);
    const res = await postJson(`${svc.url}/admin/rollback`, {});
    expect(res.status).toBe(200);
    expect(res.body.attempt.outcome).toBe('rolled_back');
    expect(res.body.active.store.version).toBe(previous);
    const q = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse', k: 1 });
    expect(q.body.generation.storeVersion).toBe(previous);
    // A forced reload reads CURRENT again: the newest published version.
    const forced = await postJson(`${svc.url}/admin/reload`, {});
    expect(forced.status).toBe(200);
    expect(forced.body.active.store.version).toBe(current);
    // Nothing to roll back to twice in a row without a new good generation in between.
    const again = await postJson(`${svc.url}/admin/rollback`, {});
    expect(again.status).toBe(200);
    const none = await postJson(`${svc.url}/admin/rollback`, {});
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe('RAG_RELOAD_NO_PREVIOUS');
  });
});
