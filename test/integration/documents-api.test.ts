// Documents from the browser, the API: /admin/documents over real HTTP on a real socket, a real store
// folder, the real ingest pipeline and reload. The read-only row runs the real process as nobody.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, postJson, startTestService, tempDir, type TestService } from '../helpers/harness.js';
import { startOnReadOnlyStore, stopRealServiceAndClean, type RealService } from '../helpers/real-service.js';
import { tinyPdf } from '../helpers/tiny-pdf.js';

const KEY = 'docs-admin-key';
const auth = { authorization: `Bearer ${KEY}` };

let svc: TestService;

beforeAll(async () => {
  svc = await startTestService({ env: { ADMIN_API_KEY: KEY, DOCS_UPLOAD_MAX_MB: '1', KEEP_VERSIONS: '10' } });
}, 300_000);
afterAll(async () => {
  await svc?.stop();
});

const docsUrl = (q = '') => `${svc.url}/admin/documents${q}`;

async function upload(name: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(docsUrl(`?name=${encodeURIComponent(name)}`), { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream', ...headers }, body: body as BodyInit });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

async function listed(): Promise<{ storeVersion: string; writable: { ok: boolean; code?: string; message?: string }; documents: Array<{ source: string; type: string; chunks: number }> }> {
  return getJson(docsUrl(), auth);
}

async function current(): Promise<string> {
  return (await readFile(join(svc.dirs.store, 'CURRENT'), 'utf8')).trim();
}

async function retrieveSources(question: string): Promise<string[]> {
  const r = await postJson(`${svc.url}/v1/retrieve`, { question, k: 3 });
  expect(r.status).toBe(200);
  return r.body.sources.map((s: { metadata: { source: string } }) => s.metadata.source);
}

/** Server-sent events of a response body: [event, data] pairs. */
function parseSse(text: string): Array<[string, any]> {
  return text
    .split('\n\n')
    .filter((b) => b.trim() && !b.startsWith(':'))
    .map((b) => {
      const ev = /^event: (.+)$/m.exec(b)?.[1] ?? 'message';
      const data = b
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      return [ev, JSON.parse(data)];
    });
}

describe('documents from the browser: the API', { timeout: 180_000 }, () => {
  it('lists the documents of the active version, and says the store can be changed', async () => {
    const l = await listed();
    const status = await getJson(`${svc.url}/admin/status`, auth);
    expect(l.storeVersion).toBe(status.active.store.version);
    expect(l.writable).toEqual({ ok: true });
    expect(l.documents.map((d) => d.source)).toEqual(['bread.txt', 'lighthouses.md', 'volcanoes.html']);
    expect(l.documents.reduce((n, d) => n + d.chunks, 0)).toBe(status.active.store.count);
  });

  it('needs the admin key', async () => {
    expect((await fetch(docsUrl())).status).toBe(401);
    const res = await fetch(docsUrl('?name=a.md'), { method: 'POST', body: '# a' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('RAG_HTTP_UNAUTHORIZED');
  });

  it('uploads a Markdown file with progress as server-sent events: a new version, unchanged chunks keep their vectors, the reload lands', async () => {
    const before = await listed();
    const text = '# Quokka clocks\n\nA quokka clock chimes thirteen times when the harbour tide turns saffron.\n';
    const res = await fetch(docsUrl('?name=quokka-clocks.md'), { method: 'POST', headers: { ...auth, accept: 'text/event-stream' }, body: text });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const events = parseSse(await res.text());
    const stages = events.filter(([e]) => e === 'progress').map(([, d]) => d.stage);
    expect(stages).toEqual(expect.arrayContaining(['reading', 'chunking', 'embedding', 'published']));
    const [last, done] = events.at(-1)!;
    expect(last).toBe('done');
    expect(done.change).toBe('upload');
    expect(done.embedded).toBe(1);
    expect(done.reused).toBe(done.chunks - 1);
    expect(done.attempt.outcome).toBe('accepted');
    expect(done.active.store.version).toBe(done.version);
    // Published like any version: its folder with a manifest, CURRENT names it.
    expect(await current()).toBe(done.version);
    const manifest = JSON.parse(await readFile(join(svc.dirs.store, done.version, 'manifest.json'), 'utf8'));
    expect(manifest.chunkCount).toBe(done.chunks);
    expect(manifest.documentCount).toBe(4);
    const after = await listed();
    expect(after.storeVersion).toBe(done.version);
    expect(after.documents.map((d) => d.source)).toEqual([...before.documents.map((d) => d.source), 'quokka-clocks.md'].sort());
    expect(await retrieveSources('When does the quokka clock chime thirteen times?')).toContain('quokka-clocks.md');
    // The reload is in the history the console's timeline shows.
    const status = await getJson(`${svc.url}/admin/status`, auth);
    expect(status.history[0]).toMatchObject({ trigger: 'documents:upload', outcome: 'accepted', storeVersion: done.version });
  });

  it('uploads HTML and PDF (text taken by content), answered as JSON without an event stream', async () => {
    const html = await upload('kelp.html', '<html><body><h1>Kelp towers</h1><p>Kelp towers sway in the cobalt current near the northern pier.</p></body></html>');
    expect(html.status).toBe(200);
    expect(html.body.attempt.outcome).toBe('accepted');
    const pdf = await upload('beacon.pdf', tinyPdf(['The marmalade beacon flashes violet', 'every ninth minute at dusk.']));
    expect(pdf.status).toBe(200);
    const docs = (await listed()).documents;
    expect(docs.find((d) => d.source === 'kelp.html')?.type).toBe('html');
    expect(docs.find((d) => d.source === 'beacon.pdf')?.type).toBe('pdf');
    expect(await retrieveSources('cobalt current kelp towers')).toContain('kelp.html');
    expect(await retrieveSources('marmalade beacon violet')).toContain('beacon.pdf');
  });

  it('re-uploading a name replaces that document', async () => {
    const r = await upload('kelp.html', '<p>Kelp towers were moved to the southern breakwater.</p>');
    expect(r.status).toBe(200);
    expect((await listed()).documents.filter((d) => d.source === 'kelp.html')).toHaveLength(1);
    const hit = await postJson(`${svc.url}/v1/retrieve`, { question: 'kelp towers', k: 1 });
    expect(hit.body.sources[0].text).toMatch(/southern breakwater/);
  });

  it('deletes a document: a new version without it; an unknown one is 404', async () => {
    const r = await fetch(docsUrl('?source=quokka-clocks.md'), { method: 'DELETE', headers: auth });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { version: string; embedded: number; attempt: { outcome: string } };
    expect(body.embedded).toBe(0);
    expect(body.attempt.outcome).toBe('accepted');
    expect(await current()).toBe(body.version);
    expect((await listed()).documents.map((d) => d.source)).not.toContain('quokka-clocks.md');
    expect(await retrieveSources('When does the quokka clock chime thirteen times?')).not.toContain('quokka-clocks.md');
    const missing = await fetch(docsUrl('?source=quokka-clocks.md'), { method: 'DELETE', headers: auth });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('RAG_DOCS_NOT_FOUND');
  });

  // Refusals: status, code, and nothing published (CURRENT unchanged, no new folder).
  const refusals: Array<[string, string, Uint8Array | string, number, string, RegExp]> = [
    ['an unsupported extension', 'tool.exe', 'MZ....', 415, 'RAG_DOCS_UNSUPPORTED_TYPE', /"\.exe" files are not accepted/],
    ['no extension', 'README', '# hi', 415, 'RAG_DOCS_UNSUPPORTED_TYPE', /without an extension/],
    ['a PNG named .txt', 'photo.txt', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), 415, 'RAG_DOCS_TYPE_MISMATCH', /content is PNG, not text/],
    ['a PDF named .md', 'paper.md', tinyPdf(['hello']), 415, 'RAG_DOCS_TYPE_MISMATCH', /content is PDF/],
    ['text named .pdf', 'notes.pdf', 'just some words', 415, 'RAG_DOCS_TYPE_MISMATCH', /no %PDF- header/],
    ['a broken PDF (header, no document)', 'broken.pdf', '%PDF-1.4\n%%garbage that is not a PDF body\n', 415, 'RAG_DOCS_TYPE_MISMATCH', /could not be read as a PDF/],
    ['.html without markup', 'page.html', 'plain words only', 415, 'RAG_DOCS_TYPE_MISMATCH', /holds no HTML markup/],
    ['invalid UTF-8', 'latin.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b]), 415, 'RAG_DOCS_TYPE_MISMATCH', /not UTF-8 text/],
    ['binary control bytes', 'bin.txt', Buffer.from('abc\u0001\u0002def'), 415, 'RAG_DOCS_TYPE_MISMATCH', /binary control characters/],
    ['an empty body', 'empty.md', '', 422, 'RAG_DOCS_NO_TEXT', /empty/],
    ['whitespace only', 'blank.md', '  \n\n ', 422, 'RAG_DOCS_NO_TEXT', /no text to index/],
    ['a path (traversal)', '../../etc/evil.md', '# evil', 400, 'RAG_DOCS_BAD_NAME', /holds a path/],
    ['an absolute path', '/tmp/evil.md', '# evil', 400, 'RAG_DOCS_BAD_NAME', /holds a path/],
    ['a backslash path', '..\\..\\evil.md', '# evil', 400, 'RAG_DOCS_BAD_NAME', /holds a path/],
    ['a hidden name', '.bashrc.md', '# evil', 400, 'RAG_DOCS_BAD_NAME', /not accepted/],
    ['a NUL byte', 'a\u0000.md', '# evil', 400, 'RAG_DOCS_BAD_NAME', /not accepted/],
    ['a control character', 'a\nb.md', '# evil', 400, 'RAG_DOCS_BAD_NAME', /not accepted/],
    ['a name too long', `${'a'.repeat(130)}.md`, '# long', 400, 'RAG_DOCS_BAD_NAME', /at most 120/],
    ['a body over DOCS_UPLOAD_MAX_MB (1 MiB)', 'big.txt', 'x'.repeat(2 ** 20 + 10), 413, 'RAG_DOCS_TOO_LARGE', /larger than 1 MiB/],
  ];
  it.each(refusals)('refuses %s', async (_what, name, body, status, code, message) => {
    const version = await current();
    const entries = (await readdir(svc.dirs.store)).sort();
    const r = await upload(name, body);
    expect(r.status).toBe(status);
    expect(r.body.error.code).toBe(code);
    expect(r.body.error.message).toMatch(message);
    expect(await current()).toBe(version);
    expect((await readdir(svc.dirs.store)).sort()).toEqual(entries);
  });

  it('refuses a chunked body that grows past the limit (no Content-Length)', async () => {
    const version = await current();
    const big = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 40; i++) c.enqueue(new Uint8Array(64 * 1024).fill(0x61));
        c.close();
      },
    });
    const res = await fetch(docsUrl('?name=stream.txt'), { method: 'POST', headers: auth, body: big, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('RAG_DOCS_TOO_LARGE');
    expect(await current()).toBe(version);
  });

  it('wrote nothing outside the store and runtime folders (the traversal names above included)', async () => {
    const top = (await readdir(svc.dirs.root)).sort();
    expect(top).toEqual(['audit', 'models', 'runtime', 'vectorstore']);
    // In the store: CURRENT, version folders, nothing named after an upload.
    for (const e of await readdir(svc.dirs.store)) expect(e === 'CURRENT' || /^v\d{8}T\d{9}Z-[0-9a-f]{4}$/.test(e)).toBe(true);
  });
});

describe('documents from the browser: a read-only store folder', { timeout: 180_000 }, () => {
  let real: RealService | undefined;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  afterAll(async () => {
    await stopRealServiceAndClean(real, tmp);
  });

  it('lists, but refuses changes with RAG_DOCS_READ_ONLY (the service user cannot write VECTORSTORE_DIR)', async () => {
    tmp = await tempDir('rag-t-docs-ro-');
    // The store belongs to root (0755): readable, not writable, for nobody, as with a :ro mount.
    real = await startOnReadOnlyStore(tmp.dir, { ADMIN_API_KEY: KEY });
    const l = await getJson(`${real.url}/admin/documents`, auth);
    expect(l.documents.map((d: { source: string }) => d.source)).toEqual(['bread.txt', 'lighthouses.md', 'volcanoes.html']);
    expect(l.writable).toMatchObject({ ok: false, code: 'RAG_DOCS_READ_ONLY' });
    expect(l.writable.message).toMatch(/not writable by the service user.*Mount VECTORSTORE_DIR read-write/);
    const before = await readdir(join(tmp.dir, 'vectorstore'));
    const up = await fetch(`${real.url}/admin/documents?name=a.md`, { method: 'POST', headers: auth, body: '# A\n\nsome text' });
    expect(up.status).toBe(409);
    expect(((await up.json()) as { error: { code: string } }).error.code).toBe('RAG_DOCS_READ_ONLY');
    const del = await fetch(`${real.url}/admin/documents?source=bread.txt`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(409);
    expect(((await del.json()) as { error: { code: string } }).error.code).toBe('RAG_DOCS_READ_ONLY');
    expect(await readdir(join(tmp.dir, 'vectorstore'))).toEqual(before);
  });
});
