import { existsSync } from 'node:fs';
import { cp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, getJson, postJson, publishDocs, startTestService, tempDir, waitFor, type TestService } from '../helpers/harness.js';

const DOCS = join(FIXTURES, 'docs-hybrid');
let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({ env: { WATCH: 'true' }, docs: DOCS });
});
afterAll(async () => {
  await svc?.stop();
});

const ids = (r: { body: { sources: Array<{ metadata: { source: string } }> } }) => r.body.sources.map((s) => s.metadata.source);
/** Point CURRENT at a version already in the store folder; its status once it serves. */
async function serve(version: string) {
  await writeFile(join(svc.dirs.store, 'CURRENT.tmp'), `${version}\n`);
  await rename(join(svc.dirs.store, 'CURRENT.tmp'), join(svc.dirs.store, 'CURRENT'));
  return waitFor(async () => {
    const s = await getJson(`${svc.url}/admin/status`);
    return s.active.store.version === version ? s : null;
  }, 20_000, `${version} serving`);
}
const ask = (question: string, mode?: string, k = 3) => postJson(`${svc.url}/v1/retrieve`, { question, k, ...(mode ? { mode } : {}) });

describe('hybrid retrieval (dense + BM25, fused by reciprocal rank)', () => {
  it('an exact identifier only keyword search finds comes back in hybrid mode', async () => {
    const q = 'what does QX7731 mean';
    const keyword = await ask(q, 'keyword');
    expect(ids(keyword)[0]).toBe('flux.md');
    expect(keyword.body.sources[0].score).toBeGreaterThan(0);
    // The static model has no vector for the identifier ([UNK]): dense search has no signal for
    // it, every document scores near zero and the ranking is noise.
    const dense = await ask(q, 'dense', 8);
    for (const s of dense.body.sources) expect(Math.abs(s.score)).toBeLessThan(0.25);
    const hybrid = await ask(q); // hybrid is the default
    expect(ids(hybrid)[0]).toBe('flux.md');
    expect(hybrid.body.sources[0].keywordScore).toBeGreaterThan(0);
  });

  it('a paraphrase only dense search finds comes back in hybrid mode', async () => {
    const q = 'doctor gave drugs to treat a disease';
    const keyword = await ask(q, 'keyword', 8);
    expect(ids(keyword)).not.toContain('medicine.md');
    const dense = await ask(q, 'dense');
    expect(ids(dense)[0]).toBe('medicine.md');
    const hybrid = await ask(q, 'hybrid');
    expect(ids(hybrid)[0]).toBe('medicine.md');
    expect(hybrid.body.sources[0].denseScore).toBeGreaterThan(0.3);
  });

  it('an exact-term filter (Chroma whereDocument $contains) and a metadata filter apply to both sides', async () => {
    const r = await postJson(`${svc.url}/v1/retrieve`, { question: 'restart the unit', k: 5, contains: 'flux regulator' });
    expect(ids(r)).toEqual(['flux.md']);
    const f = await postJson(`${svc.url}/v1/retrieve`, { question: 'QX7731 roses', k: 5, filter: { source: { $in: ['garden.md', 'music.md'] } } });
    expect(ids(f)[0]).toBe('garden.md');
    expect(ids(f).every((s) => ['garden.md', 'music.md'].includes(s))).toBe(true);
    const bad = await postJson(`${svc.url}/v1/retrieve`, { question: 'x', mode: 'fuzzy' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toBe('mode: mode must be one of dense, keyword, hybrid');
  });

  it('the keyword index ships with the version, covered by its manifest', async () => {
    const status = await getJson(`${svc.url}/admin/status`);
    expect(status.active.store.keywordIndex).toEqual({ origin: 'store', documents: 8, searchedOn: 'event-loop' });
  });

  it('a corrupt keyword index file rejects the update like any other corrupt artifact', async () => {
    const staging = await tempDir();
    try {
      const built = await publishDocs(join(staging.dir, 'built'), DOCS, { version: 'v-kw-bad', activate: false });
      const dst = join(svc.dirs.store, 'v-kw-bad');
      await cp(built.dir, dst, { recursive: true });
      await rm(join(dst, 'manifest.json')); // no checksums to catch it first
      await writeFile(join(dst, 'keyword-index.json'), '{"format":1,"index":{"documentCount": "many"');
      const before = (await getJson(`${svc.url}/admin/status`)).history[0].id;
      await writeFile(join(svc.dirs.store, 'CURRENT.tmp'), 'v-kw-bad\n');
      await rename(join(svc.dirs.store, 'CURRENT.tmp'), join(svc.dirs.store, 'CURRENT'));
      const attempt = await waitFor(async () => (await getJson(`${svc.url}/admin/status`)).history.find((a: { id: number; outcome: string }) => a.id > before && a.outcome === 'rejected'), 20_000, 'rejection');
      expect(attempt.error.code).toBe('RAG_STORE_KEYWORD_INDEX_CORRUPT');
      expect(attempt.error.message).toMatch(/^keyword-index\.json is corrupt/);
      expect((await ask('QX7731')).status).toBe(200);
    } finally {
      await staging.cleanup();
    }
  });

  it('a version above the keyword-shipping size ships no keyword index, and the service builds the same one from the texts: same hits, same scores', async () => {
    const staging = await tempDir();
    try {
      // The sizes are scaled down (8 chunks, limit 3); the default limit is KEYWORD_SHIP_MAX_CHUNKS (100,000).
      await expect(publishDocs(join(staging.dir, 'x'), DOCS, { version: 'v-x', activate: false, keywordShipMaxChunks: 3, servingIndex: true })).rejects.toMatchObject({ code: 'RAG_INGEST_FAILED' });
      // The ingest CLI's default ('auto') ships a serving index only with a keyword index: here none, and no error.
      const auto = await publishDocs(join(staging.dir, 'auto'), DOCS, { version: 'v-auto', activate: false, keywordShipMaxChunks: 3, servingIndex: 'auto' });
      expect(auto.servingIndex).toBe(false);
      expect(Object.keys(auto.manifest.files)).not.toContain('serving-index.bin');
      const built = await publishDocs(join(staging.dir, 'built'), DOCS, { version: 'v-kw-none', activate: false, keywordShipMaxChunks: 3 });
      expect(existsSync(join(built.dir, 'keyword-index.json'))).toBe(false);
      expect(Object.keys(built.manifest.files)).not.toContain('keyword-index.json');
      const questions = ['what does QX7731 mean', 'restart the unit', 'roses in the garden', 'flux regulator'];
      const before = await getJson(`${svc.url}/admin/status`);
      expect(before.active.store.keywordIndex.origin).toBe('store');
      const shipped = await Promise.all(questions.map((q) => ask(q, 'keyword', 8)));
      await cp(built.dir, join(svc.dirs.store, 'v-kw-none'), { recursive: true });
      const status = await serve('v-kw-none');
      expect(status.active.store.keywordIndex).toEqual({ origin: 'built', documents: 8, searchedOn: 'event-loop' });
      const rebuilt = await Promise.all(questions.map((q) => ask(q, 'keyword', 8)));
      const view = (r: { body: { sources: Array<{ id: string; score: number }> } }) => r.body.sources.map((s) => [s.id, s.score]);
      expect(rebuilt.map(view)).toEqual(shipped.map(view));
      expect(shipped.every((r) => r.body.sources.length > 0)).toBe(true);
    } finally {
      await staging.cleanup();
    }
  });

  it('a keyword index of the older format is not an error: the texts are indexed afresh (the build thread compiles none and builds one)', async () => {
    const staging = await tempDir();
    try {
      const built = await publishDocs(join(staging.dir, 'built'), DOCS, { version: 'v-kw-old', activate: false });
      const dst = join(svc.dirs.store, 'v-kw-old');
      await cp(built.dir, dst, { recursive: true });
      await rm(join(dst, 'manifest.json'));
      await writeFile(join(dst, 'keyword-index.json'), JSON.stringify({ format: 2, df: {}, index: {} }));
      const status = await serve('v-kw-old');
      expect(status.active.store.keywordIndex).toEqual({ origin: 'built', documents: 8, searchedOn: 'event-loop' });
      expect((await ask('QX7731')).status).toBe(200);
    } finally {
      await staging.cleanup();
    }
  });
});
