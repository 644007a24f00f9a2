import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditLines } from '../helpers/audit.js';
import { startTestService, waitFor, type TestService } from '../helpers/harness.js';
import { closeRawAgent, rawRequest } from '../helpers/raw-http.js';

/**
 * Every route x every way of spelling its path x every key state, over a real socket with the path
 * sent byte for byte. The contract: a request reaches a route only through its router's key check
 * (same status as the canonical spelling), or it gets 401/403 from that check, or 404. Nothing
 * else; and every request that enters the /v1 or /admin router is in the audit log.
 */
const USER = 'user-key-matrix';
const ADMIN = 'admin-key-matrix';
const KEYS = { none: undefined, wrong: 'not-a-key', user: USER, admin: ADMIN } as const;
type KeyState = keyof typeof KEYS;

interface Route {
  method: string;
  path: string;
  role: 'user' | 'admin';
  body?: unknown;
  /** Status with the right key (admin/rollback has nothing to roll back to: 409). */
  ok: number;
}
const ROUTES: Route[] = [
  { method: 'POST', path: '/v1/retrieve', role: 'user', body: { question: 'lighthouse lens' }, ok: 200 },
  { method: 'POST', path: '/v1/query', role: 'user', body: { question: 'lighthouse lens' }, ok: 200 },
  { method: 'POST', path: '/v1/chat/completions', role: 'user', body: { messages: [{ role: 'user', content: 'lighthouse lens' }] }, ok: 200 },
  { method: 'POST', path: '/v1/embeddings', role: 'user', body: { model: 'glove-sif-100d', input: 'lens' }, ok: 200 },
  { method: 'GET', path: '/v1/models', role: 'user', ok: 200 },
  { method: 'GET', path: '/admin/status', role: 'admin', ok: 200 },
  { method: 'GET', path: '/admin/events', role: 'admin', ok: 200 },
  { method: 'POST', path: '/admin/rollback', role: 'admin', ok: 409 },
];

/** What the canonical spelling gets for a key state. */
function canonical(route: Route, key: KeyState): number {
  if (key === 'none' || key === 'wrong') return 401;
  if (route.role === 'admin' && key === 'user') return 403;
  return route.ok;
}
/** Inside a router (of role `role`) but no route matches: that router's key check runs first, then 404. */
function checkedThen404(role: 'user' | 'admin', key: KeyState): number {
  if (key === 'none' || key === 'wrong') return 401;
  if (role === 'admin' && key === 'user') return 403;
  return 404;
}

/** 'route': same as the canonical path; a role: that router's key check then 404; '404': no router. */
type Outcome = 'route' | 'user' | 'admin' | '404';
/** Spellings of a route's path and where each must end. */
function spellings(path: string): Array<[string, Outcome]> {
  const [, mount, rest] = /^\/(v1|admin)(\/.*)$/.exec(path)!;
  const first = rest!.split('/')[1]!;
  const own: Outcome = mount === 'v1' ? 'user' : 'admin';
  const other: Outcome = mount === 'v1' ? 'admin' : 'user';
  const up = (s: string) => s.toUpperCase();
  const enc = (s: string) => `%${s.charCodeAt(0).toString(16)}${s.slice(1)}`;
  return [
    [path, 'route'],
    [`${path}/`, 'route'],
    [`${path}?next=/admin/rollback`, 'route'],
    [`/${up(mount!)}${rest}`, '404'],
    [`/${mount![0]!.toUpperCase()}${mount!.slice(1)}${rest}`, '404'],
    [`/${mount}${up(rest!)}`, own],
    [`/${enc(mount!)}${rest}`, '404'],
    [`/${mount}/${enc(first)}${rest!.slice(first.length + 1)}`, own],
    [`/${mount}%2f${rest!.slice(1)}`, '404'],
    [`/${mount}%2F${rest!.slice(1)}`, '404'],
    [`//${mount}${rest}`, '404'],
    [`/${mount}/${rest}`, own],
    [`/${mount}/.${rest}`, own],
    [`/${mount}/%2e${rest}`, own],
    [`/${mount}/..${rest}`, own],
    [`/x/..${path}`, '404'],
    [`/.${path}`, '404'],
    [`/api${path}`, '404'],
    [`/${mount}${path}`, own],
    [`/${mount === 'v1' ? 'admin' : 'v1'}${path}`, other],
    [`/${mount === 'v1' ? 'admin' : 'v1'}/..${path}`, other],
  ];
}

let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({ env: { API_KEYS: USER, ADMIN_API_KEY: ADMIN, MAX_CONCURRENT: '1000' } });
});
afterAll(async () => {
  closeRawAgent();
  await svc?.stop();
});

async function send(route: Route, path: string, key: KeyState, method = route.method) {
  const token = KEYS[key];
  return rawRequest(svc.url, {
    method,
    path,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(route.body ? { 'content-type': 'application/json' } : {}) },
    ...(route.body && method === 'POST' ? { body: JSON.stringify(route.body) } : {}),
    streamPeekMs: 150,
  });
}

describe('path spelling x key state, every route', () => {
  for (const route of ROUTES) {
    it(`${route.method} ${route.path}`, async () => {
      const failures: string[] = [];
      const reached: Array<{ id: string; what: string }> = [];
      for (const [path, outcome] of spellings(route.path)) {
        for (const key of Object.keys(KEYS) as KeyState[]) {
          const expected = outcome === 'route' ? canonical(route, key) : outcome === '404' ? 404 : checkedThen404(outcome, key);
          const res = await send(route, path, key);
          if (res.status !== expected) failures.push(`${route.method} ${path} key=${key}: got ${res.status}, want ${expected} (${res.text.slice(0, 120)})`);
          if (res.status >= 400) {
            const body = JSON.parse(res.text) as { error: { code: string } };
            if (!/^RAG_HTTP_/.test(body.error.code) && !(outcome === 'route' && body.error.code === 'RAG_RELOAD_NO_PREVIOUS')) failures.push(`${path} key=${key}: error code ${body.error.code}`);
          }
          if (outcome !== '404') reached.push({ id: String(res.headers['x-request-id']), what: `${route.method} ${path} key=${key}` });
        }
      }
      expect(failures).toEqual([]);
      // Every request that entered the /v1 or /admin router is audited, whatever its spelling.
      const ids = new Set(reached.map((r) => r.id));
      const audited = await waitFor(async () => {
        const lines = await readAuditLines(svc.dirs.audit);
        const seen = new Set(lines.map((l) => l.requestId as string));
        return [...ids].every((id) => seen.has(id)) ? lines : null;
      }, 10_000, 'audit lines for every request that reached a router');
      const byId = new Map(audited.map((l) => [l.requestId as string, l]));
      for (const r of reached) expect(byId.get(r.id), r.what).toBeDefined();
      for (const r of reached.filter((x) => byId.get(x.id)!.status < 400)) expect(byId.get(r.id)!.route, r.what).toBe(route.path);
      expect(JSON.stringify(audited)).not.toContain(USER);
      expect(JSON.stringify(audited)).not.toContain(ADMIN);
    }, 120_000);
  }
});

describe('methods x key state', () => {
  it('a method a route does not have: the key check, then 404; never the route', async () => {
    const failures: string[] = [];
    for (const route of ROUTES) {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
        if (method === route.method) continue;
        for (const key of Object.keys(KEYS) as KeyState[]) {
          const res = await send(route, route.path, key, method);
          const want = checkedThen404(route.role, key);
          if (res.status !== want) failures.push(`${method} ${route.path} key=${key}: got ${res.status}, want ${want}`);
        }
      }
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('probes and metrics stay open, and an unknown top-level path is a JSON 404', async () => {
    for (const p of ['/healthz', '/readyz', '/metrics']) expect((await rawRequest(svc.url, { path: p })).status).toBe(200);
    const res = await rawRequest(svc.url, { path: '/nope/../../etc/passwd' });
    expect(res.status).toBe(404);
    expect(JSON.parse(res.text).error.code).toBe('RAG_HTTP_NOT_FOUND');
  });
});
