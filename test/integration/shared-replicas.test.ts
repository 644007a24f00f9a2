import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishSharedVersion, rollbackShared } from '../../src/ingest/publish-shared.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { SharedRegistry } from '../../src/store/shared-registry.js';
import { getJson, logger, postJson, startTestService, tempDir, testModel, waitFor, writeEditionDocs, type TestService } from '../helpers/harness.js';

/**
 * Three replicas on one shared Chroma server follow the pointer: each published version is served
 * by every replica, under load, with no failed request; a rollback converges too; versions a live
 * replica serves are never collected.
 */
let chroma: ChromaServer;
let root: string;
let cleanup: () => Promise<void>;
const replicas: TestService[] = [];

async function publish(n: number) {
  const docs = await writeEditionDocs(root, n);
  const { documents } = await loadDocuments(docs);
  const chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
  return publishSharedVersion({ url: chroma.url, name: 'docs', chunks, model: await testModel(), version: `v${n}`, keepVersions: 1, replicaTtlMs: 30_000 });
}

const served = async (svc: TestService) => ((await getJson(`${svc.url}/readyz`)) as { store?: { version?: string } | null }).store?.version ?? null;

beforeAll(async () => {
  const t = await tempDir('rag-t-replicas-');
  root = t.dir;
  cleanup = t.cleanup;
  chroma = new ChromaServer({ dataDir: join(root, 'chroma'), logger, restart: false });
  await chroma.start();
  await publish(1);
  for (let i = 0; i < 3; i++) {
    replicas.push(await startTestService({ store: false, env: { CHROMA_URL: chroma.url, STORE_NAME: 'docs', POINTER_POLL_MS: '200', REPLICA_ID: `r${i}` } }));
  }
}, 180_000);
afterAll(async () => {
  for (const r of replicas) await r.stop();
  await chroma?.stop();
  await cleanup?.();
});

describe('replicas on a shared Chroma follow the pointer', () => {
  it('every replica serves every published version, under load, with no failed request; rollback converges; GC spares live versions', async () => {
    for (const r of replicas) expect(await served(r)).toBe('v1');
    const registry = await SharedRegistry.open(chroma.url);
    const beats = await registry.replicas('docs');
    expect(beats.map((b) => b.replica).sort()).toEqual(['r0', 'r1', 'r2']);

    let stop = false;
    const failures: string[] = [];
    let ok = 0;
    const load = async (svc: TestService) => {
      while (!stop) {
        const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse keeper edition', k: 2, mode: 'dense' });
        if (res.status !== 200) failures.push(`${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        else ok++;
      }
    };
    const loaders = replicas.flatMap((r) => [load(r), load(r)]);
    const convergence: number[] = [];
    try {
      for (let n = 2; n <= 6; n++) {
        const t0 = Date.now();
        await publish(n);
        const published = Date.now();
        await waitFor(async () => (await Promise.all(replicas.map(served))).every((v) => v === `v${n}`), 60_000, `all replicas on v${n}`);
        convergence.push(Date.now() - published);
        // A replica answers from the new version's texts.
        const res = await postJson(`${replicas[n % 3]!.url}/v1/retrieve`, { question: `edition ${n} lighthouse keeper`, k: 1, mode: 'dense' });
        expect(res.body.sources[0].text).toContain(`edition ${n}`);
        expect(Date.now() - t0).toBeGreaterThan(0);
      }
      await rollbackShared(chroma.url, 'docs');
      const rolled = Date.now();
      await waitFor(async () => (await Promise.all(replicas.map(served))).every((v) => v === 'v5'), 60_000, 'all replicas back on v5');
      convergence.push(Date.now() - rolled);
    } finally {
      stop = true;
      await Promise.all(loaders);
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);
    // keep 1 + the pointer (v5) + its previous (v6) + whatever a live replica serves: the rest is gone.
    const left = (await registry.versions('docs')).map((v) => v.version).sort();
    expect(left).not.toContain('v1');
    expect(left).toEqual(expect.arrayContaining(['v5', 'v6']));
    const sorted = [...convergence].sort((a, b) => a - b);
    console.log(`shared replicas: convergence (publish -> all 3 serving) ms ${JSON.stringify(convergence)}; p50 ${sorted[Math.floor(sorted.length / 2)]}, p90 ${sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))]}; ${ok} requests, ${failures.length} failed`);
  }, 300_000);
});
