import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, getJson, postJson, publishDocs, startTestService, waitFor, type TestService } from '../helpers/harness.js';

describe('no store yet (an empty bind mount): the service waits for one', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ env: { WATCH: 'true' }, store: false, prepare: (dirs) => mkdir(dirs.store, { recursive: true }).then(() => undefined) });
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('answers 503 RAG_NOT_READY naming why, and serves as soon as a store is published', async () => {
    const ready = await fetch(`${svc.url}/readyz`);
    expect(ready.status).toBe(503);
    const body = await ready.json();
    expect(body.status).toBe('starting');
    expect(body.lastError.code).toBe('RAG_STORE_NOT_FOUND');
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);

    const q = await postJson(`${svc.url}/v1/query`, { question: 'lighthouse' });
    expect(q.status).toBe(503);
    expect(q.headers.get('retry-after')).toBe('1');
    expect(q.body.error.code).toBe('RAG_NOT_READY');
    expect(q.body.error.message).toMatch(/^no generation is serving yet: no store in .*vectorstore/);

    await publishDocs(svc.dirs.store, join(FIXTURES, 'docs-a'), { version: 'v-first' });
    await waitFor(async () => (await fetch(`${svc.url}/readyz`)).status === 200, 20_000, 'ready');
    const ok = await postJson(`${svc.url}/v1/query`, { question: 'Who invented the lighthouse lens?' });
    expect(ok.status).toBe(200);
    expect(ok.body.generation.storeVersion).toBe('v-first');
    expect((await getJson(`${svc.url}/admin/status`)).active.store.version).toBe('v-first');
  });
});
