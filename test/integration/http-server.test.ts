import { once } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer } from '../../src/http/server.js';

/**
 * createHttpServer (src/http/server.ts): requests and responses are born with the app's
 * prototypes, so Express's per-request Object.setPrototypeOf changes nothing, and the app behaves
 * as under Express's own server (real sockets, keep-alive, bodies, errors).
 */
const app = express();
app.use(express.json({ limit: '1kb' }));
app.post('/echo', (req, res) => {
  res.json({ body: req.body as unknown, ip: req.ip, path: req.path, reqProto: Object.getPrototypeOf(req) === app.request, resProto: Object.getPrototypeOf(res) === app.response });
});
app.get('/stream', (_req, res) => {
  res.write('a');
  setTimeout(() => res.end('b'), 10);
});
app.use((err: Error & { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
  res.status(err.status ?? 500).json({ error: err.message.slice(0, 40) });
});

let server: Server;
let url: string;
const seenAtArrival: boolean[] = [];
beforeAll(async () => {
  server = createHttpServer(app);
  // Before Express runs: the objects already have the app's prototypes (Express's own server gives IncomingMessage's).
  server.prependListener('request', (req: IncomingMessage) => seenAtArrival.push(Object.getPrototypeOf(req) === app.request));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('createHttpServer', () => {
  it('makes requests and responses with the app prototypes, before Express sees them', async () => {
    const r = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"q":"x"}' });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ body: { q: 'x' }, ip: '127.0.0.1', path: '/echo', reqProto: true, resProto: true });
    expect(seenAtArrival.length).toBeGreaterThan(0);
    expect(seenAtArrival.every(Boolean)).toBe(true);
  });

  it('serves keep-alive requests, streamed responses, 404s and body errors as Express does', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ i }) });
      expect(((await r.json()) as { body: unknown }).body).toEqual({ i });
    }
    expect(await (await fetch(`${url}/stream`)).text()).toBe('ab');
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    const tooBig = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ s: 'x'.repeat(5000) }) });
    expect(tooBig.status).toBe(413);
    const bad = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"q":' });
    expect(bad.status).toBe(400);
  });
});
