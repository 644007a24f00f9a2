import { randomUUID } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error no types published for this parser
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditLines } from '../helpers/audit.js';
import { startFakeLlm } from '../helpers/fake-llm.js';
import { SECRET_NAMES } from '../helpers/secret-names.js';
import { logger, postJson, startTestService, tempDir, waitFor, type TestService } from '../helpers/harness.js';
import { loadConfig } from '../../src/config.js';
import { createService } from '../../src/service.js';

const USER = 'user-key-1';
const ADMIN = 'admin-key-9';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

let svc: TestService;
let llm: Awaited<ReturnType<typeof startFakeLlm>>;
beforeAll(async () => {
  // A slow upstream (the only fake): answers take 300 ms, so a burst really overlaps.
  llm = await startFakeLlm({ delayMs: 300 });
  svc = await startTestService({
    env: { LLM_BASE_URL: llm.url, MAX_CONCURRENT: '4', API_KEYS: `${USER},user-key-2`, ADMIN_API_KEY: ADMIN, BODY_LIMIT: '10kb', AUDIT_MAX_SIZE: '4K', AUDIT_MAX_FILES: '50', AUDIT_BODY_MAX_BYTES: '2048' },
  });
});
afterAll(async () => {
  await svc?.stop();
  await llm?.close();
});

const auditLines = () => readAuditLines(svc.dirs.audit);

describe('API keys', () => {
  it('401 without a key, 401 with a wrong key, 403 for a user key on admin routes', async () => {
    const none = await postJson(`${svc.url}/v1/retrieve`, { question: 'lens' });
    expect(none.status).toBe(401);
    expect(none.body.error).toMatchObject({ code: 'RAG_HTTP_UNAUTHORIZED', message: 'missing Authorization: Bearer <key>' });
    const wrong = await postJson(`${svc.url}/v1/retrieve`, { question: 'lens' }, auth('nope'));
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatchObject({ code: 'RAG_HTTP_UNAUTHORIZED', message: 'the API key is not valid' });
    const userOnAdmin = await fetch(`${svc.url}/admin/status`, { headers: auth(USER) });
    expect(userOnAdmin.status).toBe(403);
    expect((await userOnAdmin.json()).error.code).toBe('RAG_HTTP_FORBIDDEN');
    expect((await fetch(`${svc.url}/admin/status`)).status).toBe(401);
    expect((await fetch(`${svc.url}/admin/status`, { headers: auth(ADMIN) })).status).toBe(200);
    expect((await postJson(`${svc.url}/v1/retrieve`, { question: 'lens' }, auth(USER))).status).toBe(200);
    // Probes stay open for orchestrators.
    expect((await fetch(`${svc.url}/readyz`)).status).toBe(200);
  });
});

describe('limits', () => {
  it('a burst above MAX_CONCURRENT gets 429 with Retry-After; no request is lost or hangs', async () => {
    const n = 40;
    const results = await Promise.all(
      Array.from({ length: n }, () => postJson(`${svc.url}/v1/query`, { question: 'How do lighthouse keepers trim the lamp wick?', k: 8 }, auth(USER))),
    );
    const ok = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    expect(ok.length + limited.length).toBe(n);
    expect(ok.length).toBeGreaterThanOrEqual(4);
    expect(limited.length).toBeGreaterThan(0);
    for (const r of limited) {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(r.body.error.code).toBe('RAG_HTTP_TOO_MANY_REQUESTS');
    }
    // Capacity comes back once the burst is over.
    expect((await postJson(`${svc.url}/v1/retrieve`, { question: 'lens' }, auth(USER))).status).toBe(200);
  });

  it('413 for a body over BODY_LIMIT', async () => {
    const res = await postJson(`${svc.url}/v1/query`, { question: 'x', pad: 'y'.repeat(20_000) }, auth(USER));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('RAG_HTTP_BODY_TOO_LARGE');
  });
});

describe('audit log', () => {
  it('holds one line per request with the exact body sent, the key redacted', async () => {
    const body = { question: `audit me ${randomUUID()}`, k: 2, filter: { source: 'lighthouses.md' } };
    const res = await postJson(`${svc.url}/v1/retrieve`, body, auth(USER));
    expect(res.status).toBe(200);
    const id = res.headers.get('x-request-id')!;
    const line = await waitFor(async () => (await auditLines()).find((l) => l.requestId === id), 5000, 'the audit line');
    expect(line.body).toEqual(body);
    expect(line).toMatchObject({ method: 'POST', route: '/v1/retrieve', path: '/v1/retrieve', status: 200, auth: 'bearer [redacted]', generation: 'g1' });
    expect(line.latencyMs).toBeGreaterThan(0);
    expect(line.client).toMatch(/127\.0\.0\.1/);
    const everything = JSON.stringify(await auditLines());
    expect(everything).not.toContain(USER);
  });

  it('keeps the raw text of a body that did not parse', async () => {
    const res = await fetch(`${svc.url}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth(USER) }, body: '{"question": "broken' });
    expect(res.status).toBe(400);
    const id = res.headers.get('x-request-id')!;
    const line = await waitFor(async () => (await auditLines()).find((l) => l.requestId === id), 5000, 'the audit line');
    expect(line.body).toBe('{"question": "broken');
    expect(line.status).toBe(400);
  });

  it('redacts every secret name (parsed, unparsed and oversized bodies) and never writes credential headers', async () => {
    const secrets = Object.fromEntries(SECRET_NAMES.map((n, i) => [n, `s3cr3t-${i}-value`]));
    const sent = [
      // parsed (a 400 for the unknown fields, audited all the same)
      await postJson(`${svc.url}/v1/retrieve`, { question: 'q', nested: [{ deeper: secrets }] }, { ...auth(USER), cookie: 'sid=cookie-secret-1', 'x-api-key': 'header-secret-2' }),
      // did not parse
      await postJson(`${svc.url}/v1/retrieve`, `${JSON.stringify({ question: 'q', ...secrets }).slice(0, -1)},`, auth(USER)),
      // longer than AUDIT_BODY_MAX_BYTES (2048): cut, secrets gone on both sides of the cut
      await postJson(`${svc.url}/v1/retrieve`, { pad: 'p'.repeat(1500), ...secrets, question: 'q' }, auth(USER)),
      await postJson(`${svc.url}/v1/retrieve`, `${JSON.stringify({ pad: 'p'.repeat(1500), ...secrets })}garbage`, auth(USER)),
    ];
    const ids = sent.map((r) => r.headers.get('x-request-id')!);
    const lines = await waitFor(async () => {
      const all = await auditLines();
      const mine = ids.map((id) => all.find((l) => l.requestId === id));
      return mine.every(Boolean) ? mine : null;
    }, 5000, 'the audit lines');
    // The line a reviewer reads: every name present, every value replaced.
    expect(lines[0]!.body.nested[0].deeper).toEqual(Object.fromEntries(SECRET_NAMES.map((n) => [n, '[redacted]'])));
    expect(lines[2]!.bodyTruncated).toBe(true);
    expect(lines[3]!.bodyTruncated).toBe(true);
    const text = JSON.stringify(lines);
    for (let i = 0; i < SECRET_NAMES.length; i++) expect(text).not.toContain(`s3cr3t-${i}-value`);
    expect(text).not.toContain('cookie-secret-1');
    expect(text).not.toContain('header-secret-2');
    expect(text).not.toContain(USER);
  });

  it('the folder is 0700 and every file in it 0600', async () => {
    await postJson(`${svc.url}/v1/retrieve`, { question: 'mode check' }, auth(USER));
    await waitFor(async () => (await readdir(svc.dirs.audit)).includes('audit.log'), 5000, 'audit.log');
    expect((await stat(svc.dirs.audit)).mode & 0o777).toBe(0o700);
    for (const f of await readdir(svc.dirs.audit)) {
      if (f.endsWith('.txt')) await waitFor(async () => ((await stat(join(svc.dirs.audit, f))).mode & 0o777) === 0o600, 5000, `${f} mode`);
      expect({ f, mode: ((await stat(join(svc.dirs.audit, f))).mode & 0o777).toString(8) }).toEqual({ f, mode: '600' });
    }
  });

  it('a second instance on the same audit folder refuses to start, and says why', async () => {
    const { dir, cleanup } = await tempDir('rag-t-audit2-');
    try {
      const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', MODELS_DIR: svc.dirs.models, VECTORSTORE_DIR: svc.dirs.store, RUNTIME_DIR: join(dir, 'runtime'), AUDIT_LOG_DIR: svc.dirs.audit, WATCH: 'false' });
      const second = createService(config, { logger });
      await expect(second.start()).rejects.toMatchObject({ code: 'RAG_AUDIT_DIR_IN_USE', message: expect.stringContaining('give each instance its own AUDIT_LOG_DIR') });
      await second.stop();
      // The first one kept its lock and keeps writing.
      const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'still audited' }, auth(USER));
      await waitFor(async () => (await auditLines()).some((l) => l.requestId === res.headers.get('x-request-id')), 5000, 'the line');
    } finally {
      await cleanup();
    }
  });

  it('a lock left by a dead process on this host is taken over', async () => {
    const { dir, cleanup } = await tempDir('rag-t-audit3-');
    try {
      const audit = join(dir, 'audit');
      const { mkdir } = await import('node:fs/promises');
      await mkdir(audit, { mode: 0o700 });
      await writeFile(join(audit, '.audit.lock'), JSON.stringify({ instance: 'x', pid: 2 ** 22 - 1, host: hostname(), startedAt: 'then' }));
      const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', MODELS_DIR: svc.dirs.models, VECTORSTORE_DIR: svc.dirs.store, RUNTIME_DIR: join(dir, 'runtime'), AUDIT_LOG_DIR: audit, WATCH: 'false' });
      const third = createService(config, { logger });
      await third.start();
      await third.stop();
    } finally {
      await cleanup();
    }
  });

  it('rotates by size into compressed files', async () => {
    for (let i = 0; i < 60; i++) await postJson(`${svc.url}/v1/retrieve`, { question: `rotation filler ${i} ${'z'.repeat(100)}`, k: 1 }, auth(USER));
    const files = await waitFor(async () => {
      const f = await readdir(svc.dirs.audit);
      return f.filter((x) => x.endsWith('.gz')).length >= 2 ? f : null;
    }, 10_000, 'rotated audit files');
    expect(files.filter((x) => /^audit-\d{8}-\d{6}-\d+\.log\.gz$/.test(x)).length).toBeGreaterThanOrEqual(2);
    // Every request is in exactly one file (written off the hot path: wait for the last flush).
    const filler = async () => (await auditLines()).filter((l) => String(l.body?.question ?? '').startsWith('rotation filler')).length;
    await waitFor(async () => (await filler()) === 60, 5000, 'all 60 lines');
    expect(await filler()).toBe(60);
  });
});

describe('metrics', () => {
  it('/metrics parses as Prometheus text and its counters move', async () => {
    const scrape = async () => parsePrometheusTextFormat(await (await fetch(`${svc.url}/metrics`)).text()) as Array<{ name: string; type: string; metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: unknown }> }>;
    const count = (families: Awaited<ReturnType<typeof scrape>>) =>
      families
        .find((f) => f.name === 'rag_http_requests_total')!
        .metrics.filter((m) => m.labels?.route === '/v1/retrieve' && m.labels?.status === '200')
        .reduce((s, m) => s + Number(m.value), 0);
    const before = await scrape();
    for (let i = 0; i < 3; i++) await postJson(`${svc.url}/v1/retrieve`, { question: 'lens' }, auth(USER));
    const after = await scrape();
    expect(count(after) - count(before)).toBe(3);
    const names = after.map((f) => f.name);
    for (const n of ['rag_http_request_duration_seconds', 'rag_http_inflight_requests', 'rag_reloads_total', 'rag_reload_duration_seconds', 'rag_generation_info', 'rag_chroma_restarts_total', 'rag_embedding_batch_size', 'rag_http_rejected_total']) {
      expect(names).toContain(n);
    }
    expect(after.find((f) => f.name === 'rag_http_request_duration_seconds')!.type).toBe('HISTOGRAM');
    const info = after.find((f) => f.name === 'rag_generation_info')!.metrics[0]!;
    expect(info.labels).toMatchObject({ generation: 'g1', model: expect.stringMatching(/^glove-sif-100d@/) });
    const rejected = after.find((f) => f.name === 'rag_http_rejected_total')!.metrics;
    expect(rejected.some((m) => m.labels?.reason === 'concurrency' && Number(m.value) > 0)).toBe(true);
  });
});
