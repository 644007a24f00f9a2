// A replica started before its Chroma server (compose starts both at once; podman-compose does not wait
// for Chroma's healthcheck) starts anyway, answers 503, and serves the first version published once
// Chroma is up. Real service, real Chroma (chroma-serve.js, as in the compose profile), real model.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishSharedVersion } from '../../src/ingest/publish-shared.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import { freePort, startTestService, tempDir, testModel, waitFor, writeEditionDocs } from '../helpers/harness.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function readyz(url: string): Promise<{ status: number; body: { store: { version: string } | null; lastError: { code: string } | null } }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as never };
}

describe('shared mode: Chroma comes up after the replica', () => {
  it('the replica starts, answers 503 with the reason, and serves the first version published once Chroma answers', async () => {
    const tmp = await tempDir('rag-t-late-chroma-');
    cleanups.push(() => tmp.cleanup());
    const port = await freePort();
    const chromaUrl = `http://127.0.0.1:${port}`;
    const svc = await startTestService({ store: false, env: { CHROMA_URL: chromaUrl, STORE_NAME: 'docs', WATCH: 'true', POINTER_POLL_MS: '200' } });
    cleanups.push(() => svc.stop());

    const before = await readyz(svc.url);
    expect(before.status).toBe(503);
    expect(before.body.store).toBeNull();
    expect(before.body.lastError?.code).toBe('RAG_STORE_UNAVAILABLE');

    const chroma = spawn(process.execPath, [resolve('dist/src/store/chroma-serve.js'), '--path', join(tmp.dir, 'chroma'), '--port', String(port)], { stdio: 'ignore' });
    const exited = once(chroma, 'exit');
    cleanups.push(async () => {
      if (chroma.exitCode === null && chroma.signalCode === null) {
        chroma.kill('SIGTERM');
        await exited;
      }
    });
    await waitFor(async () => (await fetch(`${chromaUrl}/api/v2/heartbeat`).catch(() => null))?.ok, 30_000, 'Chroma to answer');

    const { documents } = await loadDocuments(await writeEditionDocs(join(tmp.dir, 'docs'), 1));
    const chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
    await publishSharedVersion({ url: chromaUrl, name: 'docs', chunks, model: await testModel(), version: 'v1', keepVersions: 3, replicaTtlMs: 60_000 });
    const after = await waitFor(async () => {
      const r = await readyz(svc.url);
      return r.status === 200 && r.body.store?.version === 'v1' ? r : null;
    }, 60_000, 'the replica to serve v1');
    expect(after.body.store?.version).toBe('v1');
  });
});
