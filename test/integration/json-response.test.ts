import express from 'express';
import { request } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, tempDir, type TestService } from '../helpers/harness.js';

/**
 * The POST routes write their JSON answers themselves (src/http/json-response.ts): every answer must
 * be what Express's `res.json` writes for the same value (headers and bytes), read off a real socket,
 * with texts of two-, three- and four-byte UTF-8 characters and bodies over Express's 1,000-character
 * threshold.
 */
let svc: TestService;
let cleanup: () => Promise<void>;
let express5: { url: string; close: () => Promise<void> };

const TEXT = [
  'Fresnel lenses (lentilles à échelons) made lighthouse beams visible far away; the keeper wound the clockwork every four hours.',
  'The Ĳmuiden lighthouse and the 灯台 at Inubōsaki both used first-order lenses; a rotating lens gave each light its character 🔦.',
  'Bread dough rises because yeast ferments sugars into carbon dioxide — the gas is trapped by gluten, and the dough doubles.',
].flatMap((p, i) => [p, `${p} (Told again, ${i + 1}: the lamp, the lens and the keeper's log — ${'lighthouse lens beam '.repeat(6)}.)`]).join('\n\n');

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: Buffer;
}

function post(url: string, body: unknown): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': data.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, bytes: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

beforeAll(async () => {
  const docs = await tempDir('rag-t-json-docs-');
  cleanup = docs.cleanup;
  await mkdir(join(docs.dir, 'docs'));
  await writeFile(join(docs.dir, 'docs', 'lights.md'), `# Lights\n\n${TEXT}\n`);
  svc = await startTestService({ docs: join(docs.dir, 'docs') });
  // Express's own res.json, as the app is configured (src/http/app.ts: no ETag).
  const app = express();
  app.set('etag', false);
  app.use(express.json({ limit: '10mb' }));
  app.post('/echo', (req, res) => {
    res.json(req.body);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  express5 = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r(undefined))),
  };
});
afterAll(async () => {
  await svc?.stop();
  await express5?.close();
  await cleanup?.();
});

describe("the POST routes' JSON answers", () => {
  const routes: Array<[string, unknown]> = [
    ['/v1/retrieve', { question: 'how did lighthouse lenses make beams visible', k: 4 }],
    ['/v1/retrieve', { question: 'lighthouse lens', k: 1, mode: 'dense' }],
    ['/v1/query', { question: 'Which lenses made lighthouse beams visible far away?' }],
    ['/v1/chat/completions', { model: 'rag', messages: [{ role: 'user', content: 'Which lenses made lighthouse beams visible?' }] }],
    ['/v1/embeddings', { model: 'glove-sif-100d', input: ['à échelons 灯台 🔦', 'bread'], encoding_format: 'float' }],
  ];

  it.each(routes)('%s: the headers and bytes Express res.json writes for the same value', async (path, body) => {
    const mine = await post(`${svc.url}${path}`, body);
    expect(mine.status).toBe(200);
    const value = JSON.parse(mine.bytes.toString('utf8'));
    const theirs = await post(`${express5.url}/echo`, value);
    expect(mine.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(mine.headers['content-type']).toBe(theirs.headers['content-type']);
    expect(mine.headers['content-length']).toBe(String(mine.bytes.length));
    expect(mine.headers['content-length']).toBe(theirs.headers['content-length']);
    expect(mine.headers['transfer-encoding']).toBeUndefined();
    expect(mine.headers.etag).toBeUndefined();
    expect(mine.bytes.equals(theirs.bytes)).toBe(true);
  });

  it('an answer holds multi-byte text and is over 1,000 characters (the cases the byte count and Express differ on)', async () => {
    const mine = await post(`${svc.url}/v1/retrieve`, { question: 'how did lighthouse lenses make beams visible', k: 4 });
    const text = mine.bytes.toString('utf8');
    expect(text.length).toBeGreaterThan(1000);
    expect(mine.bytes.length).toBeGreaterThan(text.length);
    expect(text).toContain('灯台');
    expect(text).toContain('🔦');
  });
});
