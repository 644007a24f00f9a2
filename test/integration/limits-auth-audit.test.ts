import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
// @ts-expect-error no types published for this parser
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLlm } from '../helpers/fake-llm.js';
import { postJson, startTestService, waitFor, type TestService } from '../helpers/harness.js';

const USER = 'user-key-1';
const ADMIN = 'admin-key-9';
const auth = (key: string) => ({ authorization: `Bearer ${key}` });

let svc: TestService;
let llm: Awaited<ReturnType<typeof startFakeLlm>>;
beforeAll(async () => {
  // A slow upstream (the only fake): answers take 300 ms, so a burst really overlaps.
  llm = await startFakeLlm({ delayMs: 300 });
  svc = await startTestService({
    env: { LLM_BASE_URL: llm.url, MAX_CONCURRENT: '4', API_KEYS: `${USER},user-key-2`, ADMIN_API_KEY: ADMIN, BODY_LIMIT: '10kb', AUDIT_MAX_SIZE: '4K', AUDIT_MAX_FILES: '50' },
  });
});
afterAll(async () => {
  await svc?.stop();
  await llm?.close();
});

async function auditLines(): Promise<Array<Record<string, any>>> {
  const files = await readdir(svc.dirs.audit);
  const lines: Array<Record<string, any>> = [];
  for (const f of files) {
    if (!/^audit.*\.log(\.gz)?$/.test(f)) continue; // rotating-file-stream also keeps a history file
    const raw = await readFile(join(svc.dirs.audit, f)).catch(() => null); // renamed by a rotation meanwhile
    if (!raw) continue;
    const text = f.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    for (const l of text.split('\n')) if (l.trim()) lines.push(JSON.parse(l));
  }
  return lines;
}

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
