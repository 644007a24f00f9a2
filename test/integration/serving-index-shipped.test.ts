import { cp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/fs/fingerprint.js';
import { MANIFEST_FILE } from '../../src/store/manifest.js';
import { SERVING_INDEX_FILE } from '../../src/store/index-cache.js';
import { FIXTURES, getJson, postJson, publishDocs, startTestService, tempDir, waitFor, type TestService } from '../helpers/harness.js';
import { spawnerHostsOf, standbysOf } from '../helpers/real-service.js';
import { prepareChromaStandby } from '../../src/store/chroma-server.js';
import { LOADER_NICE } from '../../src/store/store-version.js';

/**
 * A serving index shipped in the version folder (`--serving-index`): listed in the manifest, it is
 * checked with the snapshot's other files, and the version is then read without a Chroma child, with
 * the same answers as through Chroma. A corrupt one is a checksum failure (the version is refused);
 * one of another layout is not an error: the version is read through Chroma.
 */
const DOCS = join(FIXTURES, 'docs-hybrid');
let svc: TestService;
let staging: { dir: string; cleanup: () => Promise<void> };

async function point(version: string): Promise<void> {
  await writeFile(join(svc.dirs.store, 'CURRENT.tmp'), `${version}\n`);
  await rename(join(svc.dirs.store, 'CURRENT.tmp'), join(svc.dirs.store, 'CURRENT'));
}

async function serving(version: string): Promise<{ active: { store: { version: string; backend: { loadedFrom: string } } } }> {
  return waitFor(async () => {
    const s = await getJson(`${svc.url}/admin/status`);
    return s.active?.store?.version === version ? s : null;
  }, 30_000, `${version} serving`);
}

async function answers(): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const question of ['lighthouse keeper lens', 'sourdough bread yeast', 'QX7731']) {
    for (const mode of ['dense', 'hybrid', 'keyword'] as const) {
      const r = await postJson(`${svc.url}/v1/retrieve`, { question, k: 5, mode });
      expect(r.status).toBe(200);
      out.push((r.body.sources as Array<Record<string, unknown>>).map(({ id, text, score, metadata }) => ({ id, text, score, metadata })));
    }
  }
  return out;
}

/** The build phases of the accepted load of `version` (admin status history). */
async function phasesOf(version: string): Promise<Record<string, number>> {
  const h = (await getJson(`${svc.url}/admin/status`)).history as Array<{ storeVersion?: string; outcome: string; phases?: Record<string, number> }>;
  const a = h.find((x) => x.storeVersion === version && x.outcome === 'accepted');
  expect(a?.phases).toBeDefined();
  return a!.phases!;
}

/** Copy a published version under a new name, optionally replacing its serving index bytes (the manifest rewritten to match). */
async function install(from: string, name: string, servingIndex?: (b: Buffer) => Buffer | null): Promise<void> {
  const dst = join(svc.dirs.store, name);
  await cp(from, dst, { recursive: true });
  if (!servingIndex) return;
  const manifest = JSON.parse(await readFile(join(dst, MANIFEST_FILE), 'utf8'));
  const next = servingIndex(await readFile(join(dst, SERVING_INDEX_FILE)));
  if (next === null) {
    await rm(join(dst, SERVING_INDEX_FILE));
    delete manifest.files[SERVING_INDEX_FILE];
  } else {
    await writeFile(join(dst, SERVING_INDEX_FILE), next);
    manifest.files[SERVING_INDEX_FILE] = { sha256: sha256Hex(next), size: next.length };
  }
  await writeFile(join(dst, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
}

let shipped: string;
beforeAll(async () => {
  staging = await tempDir();
  svc = await startTestService({ env: { WATCH: 'true', SERVE_INDEX_CACHE: 'false', WATCH_STABILITY_MS: '3000' } });
  shipped = (await publishDocs(join(staging.dir, 'out'), DOCS, { version: 'v-shipped', activate: false, servingIndex: true })).dir;
}, 120_000);
afterAll(async () => {
  await svc?.stop();
  await staging?.cleanup();
});

describe('a serving index shipped with the version', () => {
  it('is listed in the manifest; the version loads from it, without a Chroma child, with the same answers as through Chroma', async () => {
    const manifest = JSON.parse(await readFile(join(shipped, MANIFEST_FILE), 'utf8'));
    expect(Object.keys(manifest.files)).toContain(SERVING_INDEX_FILE);
    await install(shipped, 'v-through-chroma', () => null);
    await point('v-through-chroma');
    expect((await serving('v-through-chroma')).active.store.backend.loadedFrom).toBe('chroma');
    const viaChroma = await answers();
    await install(shipped, 'v-from-index');
    await point('v-from-index');
    const s = await serving('v-from-index');
    expect(s.active.store.backend.loadedFrom).toBe('serving-index');
    expect(await answers()).toEqual(viaChroma);
    // Its Chroma files were checked where they are, never copied into the snapshot.
    expect(Object.keys(await phasesOf('v-from-index'))).toEqual(expect.arrayContaining(['snapshot', 'open.servingIndex']));
    expect(Object.keys(await phasesOf('v-from-index'))).not.toContain('open.completeSnapshot');
  });

  it('while a version read from it serves, a write to the store folder warms no loader child (the next version most likely ships one too)', async () => {
    expect((await getJson(`${svc.url}/admin/status`)).active.store.backend.loadedFrom).toBe('serving-index');
    await waitFor(async () => (await spawnerHostsOf(process.pid)).length === 1, 5_000, 'the spawner host');
    const host = (await spawnerHostsOf(process.pid))[0]!;
    // The writes of the test before settle first (WATCH_STABILITY_MS): the watcher tells of activity
    // once per burst of writes. Then whatever standby the earlier loads through Chroma left is dropped.
    await new Promise((r) => setTimeout(r, 3_500));
    await prepareChromaStandby({ nice: LOADER_NICE, ttlMs: 0 });
    await waitFor(async () => (await standbysOf(host)).length === 0, 5_000, 'no standby');
    await writeFile(join(svc.dirs.store, 'notes.txt'), 'a file being written');
    // A store read through Chroma gets one within ~1 s of such a write (spawner.test.ts).
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await standbysOf(host)).toEqual([]);
    await rm(join(svc.dirs.store, 'notes.txt'));
  });

  /** Install the shipped version as `name` with one byte of `file` changed (manifest untouched), point at it: the rejected attempt. */
  async function refusedWithOneByteChanged(name: string, file: string): Promise<{ error: { code: string; message: string } }> {
    const before = (await getJson(`${svc.url}/admin/status`)).active.store.version;
    await install(shipped, name);
    const path = join(svc.dirs.store, name, file);
    const b = await readFile(path);
    b.writeUInt8(b.readUInt8(b.length - 10) ^ 0xff, b.length - 10);
    await writeFile(path, b);
    const prev = (await getJson(`${svc.url}/admin/status`)).history[0].id;
    await point(name);
    const attempt = await waitFor(async () => (await getJson(`${svc.url}/admin/status`)).history.find((a: { id: number; outcome: string }) => a.id > prev && a.outcome === 'rejected'), 30_000, 'rejection');
    expect((await getJson(`${svc.url}/admin/status`)).active.store.version).toBe(before);
    return attempt;
  }

  it('a corrupt one (one byte changed, manifest untouched) is a checksum failure: the version is refused, the served one stays', async () => {
    expect((await refusedWithOneByteChanged('v-bad-index', SERVING_INDEX_FILE)).error.code).toMatch(/CHECKSUM/);
  });

  it('a Chroma file of such a version changed (manifest untouched) is a checksum failure too, though it is checked in place and not copied', async () => {
    const attempt = await refusedWithOneByteChanged('v-bad-sqlite', 'chroma.sqlite3');
    expect(attempt.error.code).toBe('RAG_STORE_CHECKSUM_MISMATCH');
    expect(attempt.error.message).toContain('chroma.sqlite3');
  });

  it('one of another layout (its key names another collection) is not an error: the version is read through Chroma', async () => {
    await install(shipped, 'v-foreign-index', (b) => {
      const text = b.toString('latin1');
      return Buffer.from(text.replace('\\"collection\\":\\"langchain\\"', '\\"collection\\":\\"langchaiX\\"'), 'latin1');
    });
    await point('v-foreign-index');
    const s = await serving('v-foreign-index');
    expect(s.active.store.backend.loadedFrom).toBe('chroma');
    expect((await postJson(`${svc.url}/v1/retrieve`, { question: 'QX7731', k: 1, mode: 'keyword' })).status).toBe(200);
    // Its partial snapshot was completed (the Chroma files copied and checked again) for the loader child.
    expect(Object.keys(await phasesOf('v-foreign-index'))).toEqual(expect.arrayContaining(['open.servingIndex', 'open.completeSnapshot', 'open.chromaStart']));
  });
});
