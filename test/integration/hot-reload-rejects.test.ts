import { cp, mkdir, open, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeStaticModelFolder } from '../../tools/static-model/builder.js';
import { loadEmbeddingModel } from '../../src/embeddings/model-loader.js';
import { publishStoreVersion } from '../../src/ingest/publish.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';
import { listFiles } from '../../src/store/manifest.js';
import { readServerSentEvents } from '../helpers/sse.js';
import { FIXTURES, getJson, logger, postJson, publishDocs, startTestService, tempDir, testModel, waitFor, type TestService } from '../helpers/harness.js';

let svc: TestService;
let staging: { dir: string; cleanup: () => Promise<void> };
let goodVersion: string;
const events: Array<{ type: string; attempt?: { error?: { code: string } } }> = [];
let sse: AbortController;

async function status() {
  return getJson(`${svc.url}/admin/status`);
}

type Attempt = { id: number; outcome: string; error?: { code: string; message: string } };

/** Wait for a reload attempt after `afterId` that `matches`, and return it. */
async function attemptAfter(afterId: number, matches: (a: Attempt) => boolean, what: string) {
  return waitFor(async () => {
    const s = await status();
    return s.history.find((a: Attempt) => a.id > afterId && matches(a));
  }, 20_000, `a reload attempt after #${afterId}${what}`);
}

/** Wait for the next reload attempt after `afterId`, and return it. */
async function nextAttempt(afterId: number, outcome?: string) {
  return attemptAfter(afterId, (a) => !outcome || a.outcome === outcome, outcome ? ` with outcome ${outcome}` : '');
}

async function lastAttemptId(): Promise<number> {
  return (await status()).history[0]?.id ?? 0;
}

/** The old generation keeps serving: a real query answers 200 from the good version. */
async function expectStillServing(version = goodVersion) {
  const res = await postJson(`${svc.url}/v1/query`, { question: 'lighthouse lens keeper', k: 2 });
  expect(res.status).toBe(200);
  expect(res.body.generation.storeVersion).toBe(version);
  expect(res.body.sources.length).toBeGreaterThan(0);
}

/** Copy a good version (built in staging, not activated) into ./vectorstore under a new name. */
async function stageVersion(name: string, docs = join(FIXTURES, 'docs-a')): Promise<string> {
  const built = await publishDocs(join(staging.dir, 'built'), docs, { version: name, activate: false });
  return built.dir;
}

async function pointCurrent(name: string) {
  await writeFile(join(svc.dirs.store, 'CURRENT.tmp'), `${name}\n`);
  await rename(join(svc.dirs.store, 'CURRENT.tmp'), join(svc.dirs.store, 'CURRENT'));
}

async function expectRejected(trigger: () => Promise<void>, code: string, message: RegExp) {
  const before = await lastAttemptId();
  await trigger();
  const attempt = await nextAttempt(before, 'rejected');
  expect(attempt.error.code).toBe(code);
  expect(attempt.error.message).toMatch(message);
  const s = await status();
  expect(s.active.store.version).toBe(goodVersion);
  expect(s.lastError.error.code).toBe(code);
  await expectStillServing();
}

beforeAll(async () => {
  staging = await tempDir('rag-t-staging-');
  svc = await startTestService({ env: { WATCH: 'true' } });
  goodVersion = (await status()).active.store.version;
  sse = new AbortController();
  // The reload event stream, read for the whole suite.
  readServerSentEvents(`${svc.url}/admin/events`, (type, data) => events.push({ type, ...(data as object) }), sse.signal);
});
afterAll(async () => {
  sse?.abort();
  await svc?.stop();
  await staging?.cleanup();
});

describe('rejected store updates keep the old generation serving, and the status says why', () => {
  it('a half-written copy (manifest there, chroma.sqlite3 cut short), then the finished copy is picked up', async () => {
    const src = await stageVersion('v-half');
    const dst = join(svc.dirs.store, 'v-half');
    await expectRejected(async () => {
      await mkdir(dst);
      for (const rel of await listFiles(src)) {
        await mkdir(join(dst, rel, '..'), { recursive: true });
        if (rel === 'chroma.sqlite3') {
          const buf = await readFile(join(src, rel));
          await writeFile(join(dst, rel), buf.subarray(0, Math.floor(buf.length / 2)));
        } else await cp(join(src, rel), join(dst, rel));
      }
      await pointCurrent('v-half');
    }, 'RAG_STORE_CHECKSUM_MISMATCH', /store file chroma\.sqlite3 has \d+ bytes, manifest\.json says \d+/);

    // The copy finishes: the watcher picks it up (a good update after a bad one).
    const before = await lastAttemptId();
    await cp(join(src, 'chroma.sqlite3'), join(dst, 'chroma.sqlite3'));
    const ok = await nextAttempt(before, 'accepted');
    expect(ok.storeVersion).toBe('v-half');
    await expectStillServing('v-half');
    goodVersion = 'v-half';
  });

  it('a manifest checksum mismatch (one byte flipped, same size)', async () => {
    const src = await stageVersion('v-flipped');
    const dst = join(svc.dirs.store, 'v-flipped');
    await cp(src, dst, { recursive: true });
    const fh = await open(join(dst, 'chroma.sqlite3'), 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 5000);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 5000);
    await fh.close();
    await expectRejected(() => pointCurrent('v-flipped'), 'RAG_STORE_CHECKSUM_MISMATCH', /store file chroma\.sqlite3 does not match its sha256 in manifest\.json/);
  });

  it('a truncated chroma.sqlite3 (no manifest to catch it)', async () => {
    const src = await stageVersion('v-trunc');
    const dst = join(svc.dirs.store, 'v-trunc');
    await cp(src, dst, { recursive: true });
    await rm(join(dst, 'manifest.json'));
    await truncate(join(dst, 'chroma.sqlite3'), 10_000);
    await expectRejected(() => pointCurrent('v-trunc'), 'RAG_STORE_SQLITE_CORRUPT', /chroma\.sqlite3 is truncated/);
  });

  it('a 0-byte chroma.sqlite3', async () => {
    const dst = join(svc.dirs.store, 'v-zero');
    await cp(await stageVersion('v-zero'), dst, { recursive: true });
    await rm(join(dst, 'manifest.json'));
    await truncate(join(dst, 'chroma.sqlite3'), 0);
    await expectRejected(() => pointCurrent('v-zero'), 'RAG_STORE_SQLITE_CORRUPT', /chroma\.sqlite3 is empty \(0 bytes\)/);
  });

  it('a corrupt HNSW segment file (no manifest to catch it)', async () => {
    // Enough vectors that Chroma persists and reads an HNSW index (small ones live in its log).
    const model = await testModel();
    const words = 'lighthouse lens ship harbor bread yeast volcano lava orbit satellite tea leaf river mountain'.split(' ');
    const chunks = Array.from({ length: 1500 }, (_, i) => ({
      id: `c${i}`,
      text: `${words[i % 14]} ${words[(i * 5) % 14]} ${words[(i * 11) % 14]} note ${i}`,
      metadata: { source: `s${i % 7}.md`, chunk: i },
    }));
    const built = await publishStoreVersion({ outDir: join(staging.dir, 'built'), chunks, model, logger, version: 'v-hnsw', activate: false });
    const dst = join(svc.dirs.store, 'v-hnsw');
    await cp(built.dir, dst, { recursive: true });
    await rm(join(dst, 'manifest.json'));
    const header = (await listFiles(dst)).find((f) => f.endsWith('/header.bin'))!;
    expect(header).toBeTruthy();
    await writeFile(join(dst, header), Buffer.alloc(100, 0x5a));
    await expectRejected(() => pointCurrent('v-hnsw'), 'RAG_STORE_HNSW_CORRUPT', /vector index of store v-hnsw is corrupt|crashed while reading store v-hnsw/);
  });

  it('an empty collection', async () => {
    const dst = join(svc.dirs.store, 'v-empty');
    const server = new ChromaServer({ dataDir: dst, logger, restart: false });
    await server.start();
    await ChromaStore.client(server.url).createCollection({ name: 'docs', embeddingFunction: null });
    await server.stop();
    await expectRejected(() => pointCurrent('v-empty'), 'RAG_STORE_EMPTY', /collection "docs" is empty/);
  });

  it('the whole store folder emptied, then deleted while serving, then a new store published there', async () => {
    // Done in two steps, as `rm -r` does it: a folder emptied but still there is
    // RAG_STORE_NOT_FOUND "no store in ..."; once the folder itself is removed the watcher must
    // try again and say so ("does not exist"): the second change is not swallowed by the first
    // rejection. A reload may also start mid-delete (a file gone mid-read: rejected like any
    // vanished file). Every attempt is a rejection that leaves the good version serving.
    const start = await lastAttemptId();
    const notFound = (pattern: RegExp, after: number) =>
      attemptAfter(after, (a) => a.error?.code === 'RAG_STORE_NOT_FOUND' && pattern.test(a.error.message), `: a RAG_STORE_NOT_FOUND rejection matching ${pattern}`);
    for (const entry of await readdir(svc.dirs.store)) await rm(join(svc.dirs.store, entry), { recursive: true, force: true });
    const empty = await notFound(/^no store in /, start);
    expect(empty.error.message).toContain(svc.dirs.store);
    await expectStillServing();
    await rm(svc.dirs.store, { recursive: true, force: true });
    const gone = await notFound(/does not exist/, empty.id);
    expect(gone.error.message).toContain(svc.dirs.store);
    const during = (await status()).history.filter((a: { id: number }) => a.id > start);
    expect(during.every((a: { outcome: string }) => a.outcome === 'rejected')).toBe(true);
    expect((await status()).active.store.version).toBe(goodVersion);
    await expectStillServing();
    const before = await lastAttemptId();
    await mkdir(svc.dirs.store, { recursive: true });
    await publishDocs(svc.dirs.store, join(FIXTURES, 'docs-a'), { version: 'v-reborn' });
    const ok = await nextAttempt(before, 'accepted');
    expect(ok.storeVersion).toBe('v-reborn');
    goodVersion = 'v-reborn';
    await expectStillServing();
  });
});

describe('rejected model updates', () => {
  const modelDir = () => join(svc.dirs.models, 'glove-sif-100d');
  const saved = () => join(staging.dir, 'saved-model');

  it('a truncated onnx/model.onnx, then the model restored', async () => {
    await cp(modelDir(), saved(), { recursive: true });
    await expectRejected(async () => {
      const buf = await readFile(join(modelDir(), 'onnx/model.onnx'));
      await writeFile(join(modelDir(), 'onnx/.model.onnx.tmp'), buf.subarray(0, 100_000));
      await rename(join(modelDir(), 'onnx/.model.onnx.tmp'), join(modelDir(), 'onnx/model.onnx'));
    }, 'RAG_MODEL_LOAD_FAILED', /onnx\/model\.onnx is not valid/);
    const before = await lastAttemptId();
    await cp(join(saved(), 'onnx/model.onnx'), join(modelDir(), 'onnx/model.onnx'));
    const back = await nextAttempt(before);
    expect(['unchanged', 'accepted']).toContain(back.outcome);
    await expectStillServing();
  });

  it('a model folder without tokenizer.json', async () => {
    await expectRejected(() => rename(join(modelDir(), 'tokenizer.json'), join(staging.dir, 'tokenizer.json')), 'RAG_MODEL_FILE_MISSING', /has no tokenizer\.json/);
    const before = await lastAttemptId();
    await rename(join(staging.dir, 'tokenizer.json'), join(modelDir(), 'tokenizer.json'));
    await nextAttempt(before);
    await expectStillServing();
  });

  it('a model whose dimension differs waits for a matching store; the pair is swapped together', async () => {
    // A real (tiny) 50-d static model in the same folder layout.
    const words = (await readFile(join(FIXTURES, 'docs-a', 'lighthouses.md'), 'utf8')).toLowerCase().match(/[a-z]+/g)!;
    const vocab = [...new Set(words)];
    const rows = vocab.map((_, i) => Array.from({ length: 50 }, (_, d) => Math.sin(i * 7.1 + d * 1.3)));
    const newModel = join(staging.dir, 'new-model', 'glove-sif-100d');
    await writeStaticModelFolder({ outDir: newModel, words: vocab, rows, dimension: 50, quantized: false, meta: { test: true } });

    await expectRejected(async () => {
      await rm(modelDir(), { recursive: true });
      await cp(newModel, modelDir(), { recursive: true });
    }, 'RAG_STORE_DIMENSION_MISMATCH', /makes 50-d vectors but store v-reborn holds 100-d vectors/);

    // The data engineer publishes a store built with the new model: both swap in together.
    const m50 = await loadEmbeddingModel({ dir: newModel });
    const before = await lastAttemptId();
    await publishStoreVersion({
      outDir: svc.dirs.store,
      chunks: [{ id: 'x#0', text: 'the lighthouse keeper trimmed the lamp', metadata: { source: 'x.md' } }, { id: 'y#0', text: 'a fresnel lens', metadata: { source: 'y.md' } }],
      model: m50,
      logger,
      version: 'v-dim50',
    });
    await m50.dispose();
    const ok = await nextAttempt(before, 'accepted');
    expect(ok.storeVersion).toBe('v-dim50');
    const s = await status();
    expect(s.active.model.dimension).toBe(50);
    expect(s.active.store.dimension).toBe(50);
    const q = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse lamp', k: 2 });
    expect(q.status).toBe(200);
    expect(q.body.generation.storeVersion).toBe('v-dim50');
  });

  it('every rejection reached the event stream with its code', async () => {
    const codes = events.filter((e) => e.type === 'reload.rejected').map((e) => e.attempt?.error?.code);
    for (const code of ['RAG_STORE_CHECKSUM_MISMATCH', 'RAG_STORE_SQLITE_CORRUPT', 'RAG_STORE_HNSW_CORRUPT', 'RAG_STORE_EMPTY', 'RAG_STORE_NOT_FOUND', 'RAG_MODEL_LOAD_FAILED', 'RAG_MODEL_FILE_MISSING', 'RAG_STORE_DIMENSION_MISMATCH']) {
      expect(codes).toContain(code);
    }
    expect(events.some((e) => e.type === 'reload.accepted')).toBe(true);
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(/rag_reloads_total\{outcome="rejected",code="RAG_STORE_EMPTY"\} 1/);
  });
});
