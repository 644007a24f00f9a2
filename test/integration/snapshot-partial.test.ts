import { execFileSync } from 'node:child_process';
import { cp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCEPTANCE_FILE, describeStore, SQLITE_FILE, type StoreSpec } from '../../src/store/layout.js';
import { SERVING_INDEX_FILE } from '../../src/store/index-cache.js';
import { completeSnapshot, snapshotStore } from '../../src/store/snapshot.js';
import { FIXTURES, publishDocs, tempDir } from '../helpers/harness.js';

/**
 * A partial snapshot (SnapshotOptions.copy): a version loaded from its serving-index.bin gets only
 * that file (and acceptance.json) copied; every other file the manifest lists is hashed where it is
 * and must still match, through the same safe open as a copy. completeSnapshot() copies the rest
 * when Chroma must read the version after all, checking those files again.
 *
 * | the other files, in the published folder | partial snapshot | completeSnapshot |
 * | --- | --- | --- |
 * | as published | only the chosen files copied | the rest copied, same bytes |
 * | one byte of chroma.sqlite3 changed | RAG_STORE_CHECKSUM_MISMATCH, snapshot removed | RAG_STORE_CHECKSUM_MISMATCH |
 * | chroma.sqlite3 replaced by a link out of the store | RAG_FS_LINK_OUTSIDE_ROOT | - |
 * | chroma.sqlite3 replaced by a FIFO | RAG_FS_SPECIAL_FILE, no hang | - |
 * | chroma.sqlite3 deleted | RAG_STORE_FILE_MISSING | - |
 */
const ONLY = (rel: string) => rel === SERVING_INDEX_FILE || rel === ACCEPTANCE_FILE;
let staging: { dir: string; cleanup: () => Promise<void> };
let published: string;
let runtimeDir: string;

beforeAll(async () => {
  staging = await tempDir('rag-t-partial-');
  runtimeDir = join(staging.dir, 'runtime');
  published = (await publishDocs(join(staging.dir, 'store'), join(FIXTURES, 'docs-hybrid'), { version: 'v-one', activate: false, servingIndex: true })).dir;
}, 120_000);
afterAll(async () => {
  await staging?.cleanup();
});

/** A fresh copy of the published version (each row changes its own) and its spec. */
async function fresh(name: string): Promise<StoreSpec> {
  const root = join(staging.dir, `root-${name}`);
  await cp(published, join(root, 'v-one'), { recursive: true });
  return describeStore(root, join(root, 'v-one'), 'versioned', 'v-one');
}

async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();
}

async function snapshotsLeft(): Promise<string[]> {
  return readdir(join(runtimeDir, 'stores')).catch(() => []);
}

describe('a partial snapshot of a version with serving-index.bin', () => {
  it('copies only the chosen files, checks the others in place; completeSnapshot copies the rest with the same bytes', async () => {
    const spec = await fresh('ok');
    expect(spec.files.map((f) => f.rel)).toContain(SQLITE_FILE);
    const dir = await snapshotStore(spec, { runtimeDir, recheck: async () => spec.fingerprint, copy: ONLY });
    try {
      expect(await filesUnder(dir)).toEqual(spec.files.map((f) => f.rel).filter(ONLY).sort());
      await completeSnapshot(spec, dir, { runtimeDir });
      const all = spec.files.map((f) => f.rel).sort();
      expect(await filesUnder(dir)).toEqual(all);
      for (const rel of all) expect((await readFile(join(dir, rel))).equals(await readFile(join(spec.dir, rel)))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a file it does not copy that differs from the manifest is a checksum failure, and no snapshot is left', async () => {
    const spec = await fresh('bad');
    const file = join(spec.dir, SQLITE_FILE);
    const b = await readFile(file);
    b.writeUInt8(b.readUInt8(b.length - 1) ^ 0xff, b.length - 1);
    await writeFile(file, b);
    const before = await snapshotsLeft();
    await expect(snapshotStore(spec, { runtimeDir, recheck: async () => spec.fingerprint, copy: ONLY })).rejects.toMatchObject({ code: 'RAG_STORE_CHECKSUM_MISMATCH' });
    expect(await snapshotsLeft()).toEqual(before);
  });

  it('completeSnapshot checks the files again: one changed since the partial snapshot is a checksum failure', async () => {
    const spec = await fresh('later');
    const dir = await snapshotStore(spec, { runtimeDir, recheck: async () => spec.fingerprint, copy: ONLY });
    try {
      const file = join(spec.dir, SQLITE_FILE);
      const b = await readFile(file);
      b.writeUInt8(b.readUInt8(b.length - 1) ^ 0xff, b.length - 1);
      await writeFile(file, b);
      await expect(completeSnapshot(spec, dir, { runtimeDir })).rejects.toMatchObject({ code: 'RAG_STORE_CHECKSUM_MISMATCH' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['a link out of the store', 'RAG_FS_LINK_OUTSIDE_ROOT', async (p: string) => symlink('/etc/hostname', p)],
    ['a FIFO (no writer: it must not hang)', 'RAG_FS_SPECIAL_FILE', async (p: string) => void execFileSync('mkfifo', [p])],
    ['nothing (deleted)', 'RAG_STORE_FILE_MISSING', async () => undefined],
  ])('chroma.sqlite3 replaced by %s after the store was described: %s', async (_what, code, put) => {
    const spec = await fresh(code);
    const file = join(spec.dir, SQLITE_FILE);
    await rm(file);
    await put(file);
    await expect(snapshotStore(spec, { runtimeDir, recheck: async () => spec.fingerprint, copy: ONLY })).rejects.toMatchObject({ code });
  });
});
