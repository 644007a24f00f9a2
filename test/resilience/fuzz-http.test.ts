import { gzipSync, deflateSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import { closeRawAgent, rawRequest } from '../helpers/raw-http.js';

/**
 * Paths, headers and bodies together, as an attacker's socket sends them (fast-check, fixed seed):
 * no response >= 500, no crash, every error a JSON body with a catalog code, and no API route
 * answered 2xx without a valid key.
 */
const RUNS = Number(process.env.FUZZ_HTTP_RUNS ?? 5000);
const SEED = Number(process.env.FUZZ_SEED ?? 20261203);
const USER = 'fuzz-user-key';
const ADMIN = 'fuzz-admin-key';

const segment = fc.oneof(
  fc.constantFrom('v1', 'V1', 'admin', 'Admin', 'retrieve', 'query', 'chat', 'completions', 'embeddings', 'models', 'status', 'events', 'reload', 'rollback', 'healthz', 'readyz', 'metrics', 'app.js', 'index.html', '.', '..', '', '%2e', '%2e%2e', '%2f', '%00', '%ff', '%E0%A4%A', '%', '%%', 'v1%2fretrieve', '..%2f..%2fpackage.json', '~', ';x', 'x;y=z'),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/),
);
const randomPath = fc.tuple(fc.array(segment, { minLength: 0, maxLength: 5 }), fc.boolean(), fc.option(fc.stringMatching(/^[a-z=&%0-9]{0,12}$/), { nil: undefined })).map(([segs, trailing, query]) => `/${segs.join('/')}${trailing ? '/' : ''}${query !== undefined ? `?${query}` : ''}`);
const ROUTES = ['/v1/retrieve', '/v1/query', '/v1/chat/completions', '/v1/embeddings', '/v1/models', '/admin/status', '/admin/events', '/admin/rollback', '/healthz', '/readyz', '/metrics', '/'];
/** A real route, spelled some other way: case, encoding, slashes, dot segments, prefixes. */
const respelled = fc.tuple(fc.constantFrom(...ROUTES), fc.nat({ max: 9 }), fc.nat({ max: 30 })).map(([p, how, at]) => {
  const i = Math.min(at, p.length - 1);
  switch (how) {
    case 0: return p;
    case 1: return `${p}/`;
    case 2: return p.slice(0, i) + p.charAt(i).toUpperCase() + p.slice(i + 1);
    case 3: return p.slice(0, i) + `%${p.charCodeAt(i).toString(16)}` + p.slice(i + 1);
    case 4: return p.replace('/', '//');
    case 5: return p.slice(0, i) + '/.' + p.slice(i);
    case 6: return `/x/..${p}`;
    case 7: return p.replace(/^\/(v1|admin)/, (m) => (m === '/v1' ? '/admin/..' : '/v1/..') + m);
    case 8: return `/api${p}`;
    default: return `${p}?q=${at}`;
  }
});
const path = fc.oneof({ weight: 3, arbitrary: respelled }, { weight: 1, arbitrary: randomPath });
const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');
const authorization = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(`Bearer ${USER}`, `Bearer ${ADMIN}`, `bearer ${USER}`, 'Bearer', 'Bearer ', `Basic ${USER}`, `Bearer ${USER} extra`, `Bearer ${ADMIN.toUpperCase()}`),
  fc.stringMatching(/^[ -~]{0,40}$/),
);
const token = fc.stringMatching(/^[ -~]{0,60}$/);
const headerValue = fc.oneof(token, fc.constantFrom('application/json', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'application/x-www-form-urlencoded', 'text/plain', 'application/merge-patch+json', 'multipart/form-data; boundary=x'));
/** Mostly plausible headers (so requests reach the routes), now and then a hostile one. */
const headers = fc
  .tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constant(`Bearer ${USER}`) }, { weight: 2, arbitrary: fc.constant(`Bearer ${ADMIN}`) }, { weight: 3, arbitrary: authorization }),
    fc.oneof({ weight: 8, arbitrary: fc.constant('application/json') }, { weight: 2, arbitrary: headerValue }),
    fc.oneof(
      { weight: 14, arbitrary: fc.constant({}) },
      { weight: 3, arbitrary: fc.record({ 'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'compress', 'gzip, gzip', 'x-unknown') }) },
      { weight: 2, arbitrary: fc.record({ 'x-request-id': token, accept: headerValue, 'user-agent': token, cookie: token }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: fc.record({ 'x-forwarded-for': fc.constantFrom('1.2.3.4', 'not-an-ip', '127.0.0.1, 10.0.0.1') }) },
      { weight: 1, arbitrary: fc.record({ 'transfer-encoding': fc.constantFrom('chunked', 'gzip', 'identity') }) },
      { weight: 1, arbitrary: fc.record({ huge: fc.integer({ min: 10_000, max: 40_000 }).map((n) => 'h'.repeat(n)) }) },
    ),
  )
  .map(([authorization, contentType, extra]) => ({ authorization, 'content-type': contentType, ...extra }) as Record<string, string | undefined>);

const scalar = fc.oneof(fc.string({ maxLength: 20 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const surrogate = fc.constantFrom('\uD800', '\uDFFF', 'a\uDBFFb', '\uDC00\uD800');
const deep = (n: number, open: string, close: string) => `${open.repeat(n)}${close.repeat(n)}`;
const filter = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.record({ source: fc.record({ $in: fc.array(scalar, { minLength: 1, maxLength: 4 }) }) }),
  fc.record({ chunk: fc.record({ $nin: fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 3 })), { minLength: 2, maxLength: 4 }) }) }),
  fc.integer({ min: 1, max: 40 }).map((n) => {
    let f: Record<string, unknown> = { source: 'a' };
    for (let i = 0; i < n; i++) f = { $and: [f, { chunk: i }] };
    return f;
  }),
);
const apiBody = fc.record(
  {
    question: fc.oneof(fc.string({ maxLength: 60 }), surrogate, fc.constant('lighthouse lens')),
    k: fc.oneof(fc.integer({ min: -3, max: 80 }), scalar),
    filter,
    mode: fc.constantFrom('dense', 'keyword', 'hybrid', 'x'),
    contains: fc.oneof(fc.string({ maxLength: 8 }), surrogate),
    model: fc.constantFrom('rag', 'glove-sif-100d', 'nope'),
    input: fc.oneof(fc.string({ maxLength: 30 }), fc.array(fc.oneof(fc.string({ maxLength: 10 }), surrogate), { maxLength: 3 })),
    messages: fc.array(fc.record({ role: fc.constantFrom('user', 'system', 'x'), content: fc.oneof(fc.string({ maxLength: 30 }), surrogate) }), { maxLength: 3 }),
    stream: fc.boolean(),
    [`\uD800key`]: fc.constant(1),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.constant(undefined),
  apiBody.map((b) => JSON.stringify(b)),
  apiBody.map((b) => JSON.stringify(b)),
  apiBody.map((b) => JSON.stringify(b)),
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.integer({ min: 20, max: 5000 }).map((n) => deep(n, '[', ']')),
  fc.integer({ min: 20, max: 5000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
  fc.string({ maxLength: 80 }),
  fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
  apiBody.map((b) => gzipSync(JSON.stringify(b))),
  apiBody.map((b) => deflateSync(JSON.stringify(b))),
  apiBody.map((b) => gzipSync(JSON.stringify(b)).subarray(0, 15)),
);

const method2 = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('GET', 'POST') }, { weight: 1, arbitrary: method });
const request = fc.record({ method: method2, path, headers, body });

/** A 2xx that needs no key: probes, metrics, and the console's static files. */
function openAnswer(path: string, status: number, contentType: string): boolean {
  const p = path.split('?')[0]!;
  if (/^\/(healthz|readyz|metrics)\/?$/.test(p)) return true;
  if (status === 204 || /^(text\/html|text\/css|text\/javascript|application\/javascript|image\/)/.test(contentType)) return !/^\/(v1|admin)(\/|$)/.test(p);
  return false;
}

describe(`fuzzed paths x headers x bodies (${RUNS} runs, seed ${SEED})`, () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService({ env: { API_KEYS: USER, ADMIN_API_KEY: ADMIN, MAX_CONCURRENT: '1000', BODY_LIMIT: '64kb' } });
  });
  afterAll(async () => {
    closeRawAgent();
    await svc?.stop();
  });

  it('no 5xx, no crash, JSON errors with catalog codes, no API 2xx without a valid key', async () => {
    const statuses = new Map<number, number>();
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const hdrs: Record<string, string> = {};
        for (const [k, v] of Object.entries(r.headers)) if (v !== undefined) hdrs[k] = v;
        const isAdmin = hdrs.authorization === `Bearer ${ADMIN}` || hdrs.authorization === `bearer ${ADMIN}`;
        const validKey = isAdmin || /^bearer [ \t]*fuzz-user-key[ \t]*$/i.test(hdrs.authorization ?? '');
        if (r.body === undefined) delete hdrs['transfer-encoding'];
        let res;
        try {
          res = await rawRequest(svc.url, { method: r.method, path: r.path, headers: hdrs, ...(r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD' ? { body: r.body } : {}), streamPeekMs: 50, timeoutMs: 20_000 });
        } catch (err) {
          // The client refused to send it (invalid header characters): not a server outcome.
          if ((err as NodeJS.ErrnoException).code === 'ERR_INVALID_CHAR' || (err as NodeJS.ErrnoException).code === 'ERR_UNESCAPED_CHARACTERS' || (err as NodeJS.ErrnoException).code === 'ERR_HTTP_INVALID_HEADER_VALUE') return;
          throw new Error(`${r.method} ${r.path}: ${(err as Error).message}`);
        }
        sent++;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const ct = String(res.headers['content-type'] ?? '');
        if (res.status >= 500) throw new Error(`${res.status} for ${r.method} ${r.path} ${JSON.stringify(hdrs).slice(0, 200)} -> ${res.text.slice(0, 300)}`);
        if (res.status >= 400 && r.method !== 'HEAD') {
          const parsed = JSON.parse(res.text) as { error: { code: string; message: string } };
          expect(parsed.error.code).toMatch(/^RAG_/);
          expect(parsed.error.message).not.toMatch(/https?:\/\/|127\.0\.0\.1:\d+|[0-9a-f]{8}-[0-9a-f]{4}-/);
        }
        if (res.status < 300 && !validKey && !openAnswer(r.path, res.status, ct) && !(r.method === 'OPTIONS' && !/^\/(v1|admin)(\/|$)/.test(r.path.split('?')[0]!))) {
          throw new Error(`${res.status} without a valid key for ${r.method} ${r.path} (${ct}) -> ${res.text.slice(0, 200)}`);
        }
        if (res.status < 300 && hdrs.authorization === `Bearer ${USER}` && /^\/admin\/(status|events|reload|rollback)\/?$/.test(r.path.split('?')[0]!)) {
          throw new Error(`a user key reached ${r.path}`);
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // Still serving normally afterwards, and what happened is counted.
    const ok = await rawRequest(svc.url, { method: 'POST', path: '/v1/retrieve', headers: { 'content-type': 'application/json', authorization: `Bearer ${USER}` }, body: '{"question":"lighthouse"}' });
    expect(ok.status).toBe(200);
    console.log(`fuzz-http: ${sent} requests sent of ${RUNS} cases; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
    expect(sent).toBeGreaterThanOrEqual(RUNS * 0.95);
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
  }, 600_000);

  it('the named hostile inputs get their 4xx codes', async () => {
    const key = { authorization: `Bearer ${USER}`, 'content-type': 'application/json' };
    const post = (b: string | Buffer, h: Record<string, string> = {}) => rawRequest(svc.url, { method: 'POST', path: '/v1/retrieve', headers: { ...key, ...h }, body: b });
    const cases: Array<[string, Promise<{ status: number; text: string }>, number, string]> = [
      ['invalid gzip', post(Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' }), 400, 'RAG_HTTP_BAD_ENCODING'],
      ['invalid deflate', post(Buffer.from([1, 2, 3, 4]), { 'content-encoding': 'deflate' }), 400, 'RAG_HTTP_BAD_ENCODING'],
      ['truncated gzip', post(gzipSync('{"question":"lighthouse lens"}').subarray(0, 12), { 'content-encoding': 'gzip' }), 400, 'RAG_HTTP_BAD_ENCODING'],
      ['unsupported encoding', post('{}', { 'content-encoding': 'compress' }), 415, 'RAG_HTTP_UNSUPPORTED_MEDIA_TYPE'],
      ['JSON 33 deep', post(`{"question":"q","x":${deep(32, '[', ']')}}`), 400, 'RAG_HTTP_TOO_DEEP'],
      ['JSON 100k deep', post(deep(30_000, '[', ']')), 400, 'RAG_HTTP_TOO_DEEP'],
      ['filter 9 levels', post(JSON.stringify({ question: 'q', filter: Array.from({ length: 8 }).reduce<Record<string, unknown>>((f, _, i) => ({ $and: [f, { chunk: i }] }), { source: 'a' }) })), 400, 'RAG_HTTP_VALIDATION'],
      ['$in mixed types', post(JSON.stringify({ question: 'q', filter: { source: { $in: ['a', 1] } } })), 400, 'RAG_HTTP_VALIDATION'],
      ['$nin mixed types', post(JSON.stringify({ question: 'q', filter: { chunk: { $nin: [1, true] } } })), 400, 'RAG_HTTP_VALIDATION'],
      ['lone surrogate in question', post('{"question":"lens \\ud800"}'), 400, 'RAG_HTTP_INVALID_UNICODE'],
      ['lone surrogate in contains', post('{"question":"lens","contains":"\\udc00"}'), 400, 'RAG_HTTP_INVALID_UNICODE'],
      ['lone surrogate in a key', post('{"question":"lens","\\ud800":1}'), 400, 'RAG_HTTP_INVALID_UNICODE'],
      ['headers too large', rawRequest(svc.url, { path: '/v1/models', headers: { authorization: `Bearer ${USER}`, big: 'x'.repeat(40_000) } }), 431, 'RAG_HTTP_HEADERS_TOO_LARGE'],
      ['bad percent-encoding', rawRequest(svc.url, { path: '/%E0%A4%A', headers: {} }), 404, 'RAG_HTTP_NOT_FOUND'],
      ['static traversal', rawRequest(svc.url, { path: '/..%2f..%2fpackage.json', headers: {} }), 404, 'RAG_HTTP_NOT_FOUND'],
    ];
    for (const [what, pending, status, code] of cases) {
      const res = await pending;
      expect({ what, status: res.status, code: JSON.parse(res.text).error.code }).toEqual({ what, status, code });
    }
  });
});
