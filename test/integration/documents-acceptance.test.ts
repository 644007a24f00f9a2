// Documents from the browser keep the store's quality gate: a change publishes a version that carries
// the served version's acceptance.json (listed in its manifest), so an upload passes it and a delete
// of a document its questions expect is refused by the reload while the served version stays.
// Real HTTP, real store folder, real ingest pipeline and reload.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, getJson, postJson, publishDocs, startTestService, type TestService } from '../helpers/harness.js';

const KEY = 'docs-acceptance-key';
const auth = { authorization: `Bearer ${KEY}` };
const GATE = { k: 3, minRecall: 1, questions: [{ question: 'lighthouse keeper lens', expected: ['lighthouses.md'] }] };

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({
    env: { ADMIN_API_KEY: KEY, KEEP_VERSIONS: '10' },
    store: false,
    prepare: async (dirs) => void (await publishDocs(dirs.store, join(FIXTURES, 'docs-a'), { acceptance: GATE })),
  });
}, 300_000);
afterAll(async () => {
  await svc?.stop();
});

const current = async () => (await readFile(join(svc.dirs.store, 'CURRENT'), 'utf8')).trim();
const manifestOf = async (version: string) => JSON.parse(await readFile(join(svc.dirs.store, version, 'manifest.json'), 'utf8')) as { files: Record<string, unknown> };

describe('document changes keep the acceptance questions of the served version', { timeout: 120_000 }, () => {
  it('an upload publishes a version with the same acceptance.json, which its reload checks and passes', async () => {
    const first = await current();
    const before = await readFile(join(svc.dirs.store, first, 'acceptance.json'), 'utf8');
    const res = await fetch(`${svc.url}/admin/documents?name=otters.md`, { method: 'POST', headers: { ...auth, 'content-type': 'text/markdown' }, body: '# Otters\n\nSea otters hold hands while they sleep so they do not drift apart.\n' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { version: string; attempt: { outcome: string } };
    expect(body.attempt.outcome).toBe('accepted');
    expect(await current()).toBe(body.version);
    expect(Object.keys((await manifestOf(body.version)).files)).toContain('acceptance.json');
    expect(await readFile(join(svc.dirs.store, body.version, 'acceptance.json'), 'utf8')).toBe(before);
    const status = await getJson(`${svc.url}/admin/status`, auth);
    expect(status.acceptance).toMatchObject({ passed: true, storeVersion: body.version, recall: 1, questions: 1 });
  });

  it('deleting the document the questions expect: 422, refused with RAG_STORE_ACCEPTANCE_FAILED, the served version keeps answering', async () => {
    const served = (await getJson(`${svc.url}/admin/status`, auth)).active.store.version as string;
    const res = await fetch(`${svc.url}/admin/documents?source=lighthouses.md`, { method: 'DELETE', headers: auth });
    expect(res.status).toBe(422);
    const body = (await res.json()) as { version: string; attempt: { outcome: string; error: { code: string } } };
    expect(body.attempt.outcome).toBe('rejected');
    expect(body.attempt.error.code).toBe('RAG_STORE_ACCEPTANCE_FAILED');
    const status = await getJson(`${svc.url}/admin/status`, auth);
    expect(served).toMatch(/^v/);
    expect(status.active.store.version).toBe(served);
    const r = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse keeper lens', k: 3 });
    expect(r.status).toBe(200);
    expect(r.body.sources.map((s: { metadata: { source: string } }) => s.metadata.source)).toContain('lighthouses.md');
  });

  it('an acceptance.json changed after publishing is not carried on: the change is refused with RAG_STORE_ACCEPTANCE_INVALID and nothing is published', async () => {
    const served = (await getJson(`${svc.url}/admin/status`, auth)).active.store.version as string;
    await writeFile(join(svc.dirs.store, served, 'acceptance.json'), JSON.stringify({ ...GATE, minRecall: 0 }));
    const before = await current();
    const res = await fetch(`${svc.url}/admin/documents?name=seals.md`, { method: 'POST', headers: { ...auth, 'content-type': 'text/markdown' }, body: '# Seals\n\nSeals sleep in the water.\n' });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('RAG_STORE_ACCEPTANCE_INVALID');
    expect(body.error.message).toMatch(/changed since it was published/);
    expect(await current()).toBe(before);
  });
});
