import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { createService, type Service } from '../../src/service.js';
import { INDEX_CACHE_DIR } from '../../src/store/index-cache.js';
import { MODEL_FACTS_DIR } from '../../src/embeddings/model-facts-cache.js';
import { copyModelInto, FIXTURES, getJson, postJson, publishDocs, tempDir, waitFor } from '../helpers/harness.js';

/**
 * The serving index cache (RUNTIME_DIR/index-cache) and the model facts cache (RUNTIME_DIR/
 * model-facts) across real restarts of the service on the same folders: a restart on an unchanged
 * store version serves from the cache with the same answers; a corrupt, truncated, foreign or
 * stale entry, a rewritten store file, or a cache folder that cannot be written each fall back to
 * the full path (snapshot + Chroma loader child) with the reason logged, and never serve a wrong index.
 */
type Line = { level: string; msg: string; code?: string; reason?: string; [k: string]: unknown };
let root: string;
let cleanupRoot: () => Promise<void>;
let dirs: { models: string; store: string; runtime: string };
let running: { service: Service; logs: Line[] } | null = null;
const mounts: string[] = [];

async function start(env: Record<string, string> = {}): Promise<{ service: Service; url: string; logs: Line[] }> {
  const logs: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) logs.push(JSON.parse(l) as Line);
      cb();
    },
  });
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: 'debug',
    MODELS_DIR: dirs.models,
    VECTORSTORE_DIR: dirs.store,
    RUNTIME_DIR: dirs.runtime,
    AUDIT_LOG_DIR: 'off',
    WATCH: 'false',
    ...env,
  });
  const service = createService(config, { logger: createLogger({ level: 'debug', destination: sink }) });
  running = { service, logs };
  const url = await service.start();
  return { service, url, logs };
}

async function stop(): Promise<void> {
  await running?.service.stop();
  running = null;
}

const QUESTIONS = ['lighthouse keeper lens', 'sourdough bread yeast', 'how long does the bread rise'];

/** What a client sees: dense and hybrid results (ids, scores, texts, metadata), and a filtered query. */
async function answers(url: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const question of QUESTIONS) {
    for (const mode of ['dense', 'hybrid', 'keyword'] as const) {
      const r = await postJson(`${url}/v1/retrieve`, { question, k: 5, mode });
      expect(r.status).toBe(200);
      out.push(r.body.sources);
    }
  }
  const filtered = await postJson(`${url}/v1/retrieve`, { question: 'light', k: 3, mode: 'hybrid', filter: { source: 'bread.txt' } });
  expect(filtered.status).toBe(200);
  out.push(filtered.body.sources);
  return out;
}

async function backend(url: string): Promise<{ kind: string; loadedFrom?: string }> {
  const s = await getJson(`${url}/admin/status`);
  return s.active.store.backend;
}

async function entries(): Promise<string[]> {
  return (await readdir(join(dirs.runtime, INDEX_CACHE_DIR)).catch(() => [] as string[])).filter((n) => n.endsWith('.idx'));
}

async function waitCached(logs: Line[]): Promise<Line> {
  return waitFor(() => logs.find((l) => l.msg === 'serving index cached for the next start' || l.msg.startsWith('could not write the serving index cache')), 20_000, 'cache write');
}

let reference: unknown[];

beforeAll(async () => {
  ({ dir: root, cleanup: cleanupRoot } = await tempDir('rag-t-idxcache-'));
  dirs = { models: join(root, 'models'), store: join(root, 'vectorstore'), runtime: join(root, 'runtime') };
  await copyModelInto(dirs.models);
  await publishDocs(dirs.store, join(FIXTURES, 'docs-a'));
  // The reference: the store read through Chroma with the cache off.
  const s = await start({ SERVE_INDEX_CACHE: 'false' });
  expect(await backend(s.url)).toMatchObject({ kind: 'in-process', loadedFrom: 'chroma' });
  reference = await answers(s.url);
  await stop();
  expect(await entries()).toEqual([]);
}, 120_000);

afterEach(async () => {
  await stop();
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
});

afterAll(async () => {
  await cleanupRoot?.();
});

/** A start that must have read through Chroma (cache not used), with `why` logged, and the same answers. */
async function expectFullPathWith(why: RegExp | null): Promise<{ url: string; logs: Line[] }> {
  const s = await start();
  expect(await backend(s.url)).toMatchObject({ kind: 'in-process', loadedFrom: 'chroma' });
  if (why) {
    const warn = s.logs.find((l) => l.code === 'RAG_STORE_INDEX_CACHE_INVALID');
    expect(warn, 'a logged reason').toBeDefined();
    expect(warn!.level).toBe('warn');
    expect(warn!.reason).toMatch(why);
  } else {
    expect(s.logs.some((l) => l.code === 'RAG_STORE_INDEX_CACHE_INVALID')).toBe(false);
  }
  expect(await answers(s.url)).toEqual(reference);
  return s;
}

describe('serving index cache', () => {
  it('the first start reads through Chroma and writes an entry; the next serves from it (no snapshot, no Chroma child) with identical answers', async () => {
    const first = await start();
    expect(await backend(first.url)).toMatchObject({ loadedFrom: 'chroma' });
    // A build through Chroma reports the open phase's own steps beside it.
    const built = first.logs.find((l) => l.msg === 'generation swapped in')!;
    expect(built.phases).toMatchObject({ snapshot: expect.any(Number), open: expect.any(Number), 'open.chromaStart': expect.any(Number), 'open.index': expect.any(Number) });
    expect((await waitCached(first.logs)).msg).toBe('serving index cached for the next start');
    await stop();
    const [entry] = await entries();
    expect(entry).toMatch(/^[0-9a-f]{32}\.idx$/);
    expect(((await stat(join(dirs.runtime, INDEX_CACHE_DIR))).mode & 0o777).toString(8)).toBe('700');

    const second = await start();
    expect(await backend(second.url)).toMatchObject({ kind: 'in-process', loadedFrom: 'index-cache' });
    const swapped = second.logs.find((l) => l.msg === 'generation swapped in')!;
    expect(Object.keys(swapped.phases as object)).not.toContain('snapshot');
    expect(Object.keys(swapped.phases as object).filter((k) => k.startsWith('open'))).toEqual([]);
    // No snapshot was made for it (the Chroma loader child runs on a snapshot).
    expect(await readdir(join(dirs.runtime, 'stores')).catch(() => [])).toEqual([]);
    expect(await answers(second.url)).toEqual(reference);
    // The model facts came from their cache too: the same model id.
    expect(second.logs.some((l) => l.msg === 'model facts cache miss')).toBe(false);
  }, 120_000);

  it('a corrupt entry (one byte of the vectors changed): refused with the reason, read through Chroma, rewritten', async () => {
    const [entry] = await entries();
    const file = join(dirs.runtime, INDEX_CACHE_DIR, entry!);
    const buf = await readFile(file);
    const hlen = buf.readUInt32LE(8);
    const header = JSON.parse(buf.toString('utf8', 12, 12 + hlen)) as { arrays: Array<[string, string, number]> };
    // The vectors are the payload's first array; the payload starts after the header, at a multiple of 8.
    expect(header.arrays[0]![0]).toBe('vectors');
    const at = Math.ceil((12 + hlen) / 8) * 8 + 5;
    buf.writeUInt8(buf.readUInt8(at) ^ 0x40, at);
    await writeFile(file, buf);
    const s = await expectFullPathWith(/payload does not match its sha256 \(corrupt\)/);
    await waitCached(s.logs);
    await stop();
    const again = await start();
    expect(await backend(again.url)).toMatchObject({ loadedFrom: 'index-cache' });
  }, 120_000);

  it('a truncated entry: refused ("truncated"), read through Chroma', async () => {
    const [entry] = await entries();
    const file = join(dirs.runtime, INDEX_CACHE_DIR, entry!);
    await truncate(file, Math.floor((await stat(file)).size / 2));
    const s = await expectFullPathWith(/truncated/);
    await waitCached(s.logs);
  }, 120_000);

  it('a file that is not an entry at all (random bytes), and an empty one: refused ("bad magic"), read through Chroma', async () => {
    const [entry] = await entries();
    const file = join(dirs.runtime, INDEX_CACHE_DIR, entry!);
    await writeFile(file, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
    let s = await expectFullPathWith(/bad magic/);
    await waitCached(s.logs);
    await stop();
    await writeFile(file, '');
    s = await expectFullPathWith(/bad magic/);
    await waitCached(s.logs);
  }, 120_000);

  it("an entry of another store version put under this version's name: refused (written for another store version), never served", async () => {
    const [entry] = await entries();
    const file = join(dirs.runtime, INDEX_CACHE_DIR, entry!);
    const ours = await readFile(file);
    // A second version with other documents, served once so its own entry is written.
    const staging = await tempDir('rag-t-idxcache-b-');
    try {
      const b = await publishDocs(join(staging.dir, 'out'), join(FIXTURES, 'docs-b'), { version: 'other-version', activate: false });
      await cp(b.dir, join(dirs.store, 'other-version'), { recursive: true });
      await writeFile(join(dirs.store, 'CURRENT'), 'other-version');
      const other = await start();
      expect((await getJson(`${other.url}/admin/status`)).active.store.version).toBe('other-version');
      await waitCached(other.logs);
      await stop();
      const otherEntry = (await entries()).find((n) => n !== entry)!;
      const foreign = await readFile(join(dirs.runtime, INDEX_CACHE_DIR, otherEntry));
      // Back to the first version, whose entry now holds the other version's index.
      await rm(join(dirs.store, 'CURRENT'));
      await rm(join(dirs.store, 'other-version'), { recursive: true });
      await writeFile(file, foreign);
      const s = await expectFullPathWith(/written for another store version, collection or code version/);
      await waitCached(s.logs);
      // Rewritten with this version's index.
      expect((await readFile(file)).equals(foreign)).toBe(false);
      expect((await readFile(file)).length).toBe(ours.length);
    } finally {
      await staging.cleanup();
    }
  }, 180_000);

  it('a store file rewritten in place with the same bytes (new ctime): a miss, the old entry is not used', async () => {
    const s0 = await start();
    expect(await backend(s0.url)).toMatchObject({ loadedFrom: 'index-cache' });
    await stop();
    const version = (await readdir(dirs.store)).find((n) => n.startsWith('v'))!;
    const manifest = join(dirs.store, version, 'manifest.json');
    await writeFile(manifest, await readFile(manifest));
    const before = await entries();
    const s = await expectFullPathWith(null);
    expect(s.logs.find((l) => l.msg === 'serving index cache miss')?.reason).toBe('no entry for this store version');
    await waitCached(s.logs);
    expect((await entries()).length).toBe(before.length + 1);
    // Touching a file back to its old mtime does not bring the old entry back either (ctime moved).
    const st = await stat(manifest);
    await utimes(manifest, st.atime, new Date(st.mtimeMs - 60_000));
    await stop();
    const t = await expectFullPathWith(null);
    await waitCached(t.logs);
  }, 180_000);

  it('a cache folder that cannot be written (read-only mount): serving is not affected, the reason is logged; nothing is read from it', async () => {
    await rm(join(dirs.runtime, INDEX_CACHE_DIR), { recursive: true, force: true });
    await mkdir(join(dirs.runtime, INDEX_CACHE_DIR));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', join(dirs.runtime, INDEX_CACHE_DIR)]);
    mounts.push(join(dirs.runtime, INDEX_CACHE_DIR));
    const s = await expectFullPathWith(null);
    const failed = await waitCached(s.logs);
    expect(failed.level).toBe('warn');
    expect(failed.reason).toMatch(/EROFS/);
    expect((await getJson(`${s.url}/readyz`)).ready ?? true).toBeTruthy();
  }, 120_000);

  it('a cache folder with too little room (a small tmpfs): the entry is not written, the room is left for snapshots', async () => {
    await rm(join(dirs.runtime, INDEX_CACHE_DIR), { recursive: true, force: true });
    await mkdir(join(dirs.runtime, INDEX_CACHE_DIR));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', join(dirs.runtime, INDEX_CACHE_DIR)]);
    mounts.push(join(dirs.runtime, INDEX_CACHE_DIR));
    const s = await expectFullPathWith(null);
    const failed = await waitCached(s.logs);
    expect(failed.level).toBe('warn');
    expect(failed.reason).toMatch(/bytes free and the entry takes \d+: not written, the space is left for snapshots/);
    expect(await readdir(join(dirs.runtime, INDEX_CACHE_DIR))).toEqual([]);
  }, 120_000);

  it('SERVE_INDEX_CACHE=false: neither read nor written', async () => {
    await rm(join(dirs.runtime, INDEX_CACHE_DIR), { recursive: true, force: true });
    const s = await start({ SERVE_INDEX_CACHE: 'false' });
    expect(await backend(s.url)).toMatchObject({ loadedFrom: 'chroma' });
    await new Promise((r) => setTimeout(r, 1000));
    expect(s.logs.some((l) => /serving index cache/.test(l.msg))).toBe(false);
    expect(await entries()).toEqual([]);
  }, 120_000);
});

describe('model facts cache', () => {
  async function factsEntries(): Promise<string[]> {
    return (await readdir(join(dirs.runtime, MODEL_FACTS_DIR)).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  }

  it('a corrupt entry is refused with the reason and the folder checked from its bytes (same model id); a rewritten model file is a miss', async () => {
    const s0 = await start();
    const id = (await getJson(`${s0.url}/admin/status`)).active.model.id as string;
    await stop();
    const [entry] = await factsEntries();
    expect(entry).toBeDefined();
    const file = join(dirs.runtime, MODEL_FACTS_DIR, entry!);
    const text = await readFile(file, 'utf8');
    // A different ONNX sha256 with the old checksum: must be refused, never give another model id.
    await writeFile(file, text.replace(/"onnxSha256":"[0-9a-f]{4}/, '"onnxSha256":"0000'));
    const s1 = await start();
    const warn = s1.logs.find((l) => l.msg === 'model facts cache entry not used; checking the model folder from its files');
    expect(warn?.reason).toBe('its facts do not match their sha256 (corrupt)');
    expect((await getJson(`${s1.url}/admin/status`)).active.model.id).toBe(id);
    await stop();
    // Well-formed JSON with a matching checksum, but facts of the wrong shape: refused too.
    const entry0 = JSON.parse(text) as { facts: Record<string, unknown> };
    const bent = { ...entry0.facts, onnxSha256: 'not-a-sha' };
    await writeFile(file, JSON.stringify({ ...entry0, facts: bent, sha256: createHash('sha256').update(JSON.stringify(bent)).digest('hex') }));
    const s15 = await start();
    expect(s15.logs.find((l) => l.msg.startsWith('model facts cache entry not used'))?.reason).toBe('its facts are not well-formed');
    expect((await getJson(`${s15.url}/admin/status`)).active.model.id).toBe(id);
    await stop();
    await writeFile(file, text.slice(0, 40));
    const s2 = await start();
    expect(s2.logs.find((l) => l.msg.startsWith('model facts cache entry not used'))?.reason).toMatch(/not valid JSON/);
    expect((await getJson(`${s2.url}/admin/status`)).active.model.id).toBe(id);
    await stop();
    const onnx = join(dirs.models, 'glove-sif-100d', 'onnx', 'model.onnx');
    await writeFile(onnx, await readFile(onnx));
    const s3 = await start();
    expect(s3.logs.find((l) => l.msg === 'model facts cache miss')?.reason).toBe('no entry');
    expect((await getJson(`${s3.url}/admin/status`)).active.model.id).toBe(id);
  }, 180_000);
});

describe('serving index cache and the quality gate', () => {
  it("a start from the cache still runs the version's acceptance.json (read from the published folder, checked against the manifest)", async () => {
    const saved = dirs;
    const gate = { k: 3, minRecall: 1, questions: [{ question: 'lighthouse keeper lens', expected: ['lighthouses.md'] }] };
    dirs = { models: saved.models, store: join(root, 'vectorstore-gate'), runtime: join(root, 'runtime-gate') };
    try {
      await publishDocs(dirs.store, join(FIXTURES, 'docs-a'), { acceptance: gate });
      const first = await start();
      expect(await backend(first.url)).toMatchObject({ loadedFrom: 'chroma' });
      expect((await getJson(`${first.url}/admin/status`)).acceptance).toMatchObject({ passed: true, recall: 1, questions: 1 });
      expect((await waitCached(first.logs)).msg).toBe('serving index cached for the next start');
      await stop();
      const second = await start();
      expect(await backend(second.url)).toMatchObject({ loadedFrom: 'index-cache' });
      expect((await getJson(`${second.url}/admin/status`)).acceptance).toMatchObject({ passed: true, recall: 1, questions: 1 });
    } finally {
      await stop();
      dirs = saved;
    }
  }, 120_000);
});
