import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RagError } from '../../src/errors.js';
import { isValidVersionName, resolveStore, WriterActiveError } from '../../src/store/layout.js';

/**
 * Which store ./vectorstore says to serve, on real folders in a temp dir. Only the layout is
 * resolved here (no file is opened as SQLite): chroma.sqlite3 only has to exist.
 */
let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'rag-layout-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const SHA = 'a'.repeat(64);
function manifest(version: string, createdAt: string, files: string[] = ['chroma.sqlite3']): string {
  return JSON.stringify({
    formatVersion: 1,
    version,
    createdAt,
    collection: 'docs',
    embedding: { model: 'm', modelId: 'm@1', dimension: 4 },
    chunkCount: 1,
    files: Object.fromEntries(files.map((f) => [f, { sha256: SHA, size: 4 }])),
  });
}

async function version(name: string, createdAt: string | null, extra: Record<string, string> = {}): Promise<void> {
  await mkdir(join(root, name), { recursive: true });
  await writeFile(join(root, name, 'chroma.sqlite3'), 'data');
  if (createdAt) await writeFile(join(root, name, 'manifest.json'), manifest(name, createdAt, ['chroma.sqlite3', ...Object.keys(extra).filter((f) => !f.startsWith('unlisted'))]));
  for (const [rel, body] of Object.entries(extra)) {
    await mkdir(join(root, name, rel, '..'), { recursive: true });
    await writeFile(join(root, name, rel), body);
  }
}

async function flat(): Promise<void> {
  await writeFile(join(root, 'chroma.sqlite3'), 'data');
  await mkdir(join(root, 'seg-1'));
  await writeFile(join(root, 'seg-1', 'data_level0.bin'), 'vec');
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RagError);
  return { code: (err as RagError).code, message: (err as RagError).message };
}

describe('version folder names', () => {
  it.each([
    ['v1', true],
    ['v20261204T023034467Z-2460', true],
    ['store_2.b', true],
    ['A'.repeat(128), true],
    ['A'.repeat(129), false],
    ['.hidden', false],
    ['-dash', false],
    ['a..b', false],
    ['a/b', false],
    ['', false],
    ['with space', false],
  ])('%j -> %s', (name, ok) => {
    expect(isValidVersionName(name)).toBe(ok);
  });
});

describe('store layout resolution', () => {
  it('versioned: CURRENT names the served folder, whatever is newer', async () => {
    await version('v1', '2026-01-01T00:00:00Z');
    await version('v2', '2026-02-01T00:00:00Z');
    await writeFile(join(root, 'CURRENT'), 'v1\n');
    const spec = await resolveStore(root);
    expect(spec).toMatchObject({ kind: 'versioned', version: 'v1', dir: join(root, 'v1') });
    expect(spec.files.map((f) => f.rel).sort()).toEqual(['chroma.sqlite3', 'manifest.json']);
    expect(spec.fingerprint).toMatch(/^[0-9a-f]{16}$/);
  });

  it('versioned without CURRENT: the newest manifest createdAt, not the newest name', async () => {
    await version('b-old', '2026-01-01T00:00:00Z');
    await version('a-new', '2026-03-01T00:00:00Z');
    expect((await resolveStore(root)).version).toBe('a-new');
  });

  it('a single store folder is served even without a manifest', async () => {
    await version('only', null);
    const spec = await resolveStore(root);
    expect(spec).toMatchObject({ kind: 'versioned', version: 'only', manifest: null });
  });

  it('files a manifest does not list are not copied, and are reported', async () => {
    await version('v1', '2026-01-01T00:00:00Z', { 'seg/a.bin': 'x', 'unlisted.txt': 'y' });
    const spec = await resolveStore(root);
    expect(spec.files.map((f) => f.rel).sort()).toEqual(['chroma.sqlite3', 'manifest.json', 'seg/a.bin']);
    expect(spec.unlisted).toEqual(['unlisted.txt']);
  });

  it('flat: chroma.sqlite3 at the top, every file but CURRENT-like pointers and dot entries', async () => {
    await flat();
    await mkdir(join(root, '.incoming'));
    await writeFile(join(root, '.incoming', 'x'), 'wip');
    const spec = await resolveStore(root);
    expect(spec.kind).toBe('flat');
    expect(spec.dir).toBe(root);
    expect(spec.version).toBe(`inplace-${spec.fingerprint.slice(0, 12)}`);
    expect(spec.files.map((f) => f.rel).sort()).toEqual(['chroma.sqlite3', 'seg-1/data_level0.bin']);
  });

  it('the fingerprint changes when a served file is written, not when a dot entry is', async () => {
    await flat();
    const a = (await resolveStore(root)).fingerprint;
    await writeFile(join(root, '.tmp'), 'ignored');
    expect((await resolveStore(root)).fingerprint).toBe(a);
    await writeFile(join(root, 'seg-1', 'data_level0.bin'), 'changed');
    expect((await resolveStore(root)).fingerprint).not.toBe(a);
  });

  it('dot folders are work in progress and never served', async () => {
    await version('.v-wip', '2026-05-01T00:00:00Z');
    await version('v1', '2026-01-01T00:00:00Z');
    expect((await resolveStore(root)).version).toBe('v1');
  });

  const REJECTIONS: Array<[name: string, setUp: () => Promise<void>, code: string, message: RegExp]> = [
    ['a missing root', async () => rm(root, { recursive: true }), 'RAG_STORE_NOT_FOUND', /does not exist$/],
    ['a root that is a file', async () => {
      await rm(root, { recursive: true });
      await writeFile(root, 'x');
    }, 'RAG_STORE_NOT_FOUND', /is not a folder$/],
    ['an empty root', async () => undefined, 'RAG_STORE_NOT_FOUND', /^no store in .*: expected a version folder/],
    ['a flat store and CURRENT', async () => {
      await flat();
      await version('v1', '2026-01-01T00:00:00Z');
      await writeFile(join(root, 'CURRENT'), 'v1');
    }, 'RAG_STORE_LAYOUT_AMBIGUOUS', /holds a flat store .* and a CURRENT file/],
    ['a flat store and a store folder', async () => {
      await flat();
      await version('v1', '2026-01-01T00:00:00Z');
    }, 'RAG_STORE_LAYOUT_AMBIGUOUS', /and store folder v1: it is not clear which to serve/],
    ['two store folders, one without a manifest', async () => {
      await version('v1', '2026-01-01T00:00:00Z');
      await version('v2', null);
    }, 'RAG_STORE_LAYOUT_AMBIGUOUS', /v2 has no valid manifest\.json, so "newest" is unknown/],
    ['CURRENT naming an invalid folder name', async () => {
      await version('v1', '2026-01-01T00:00:00Z');
      await writeFile(join(root, 'CURRENT'), '../etc');
    }, 'RAG_STORE_NOT_FOUND', /CURRENT names "\.\.\/etc", which is not a valid version folder name/],
    ['CURRENT naming a missing version', async () => {
      await version('v1', '2026-01-01T00:00:00Z');
      await writeFile(join(root, 'CURRENT'), 'v9');
    }, 'RAG_STORE_NOT_FOUND', /CURRENT points to version "v9", which does not exist/],
    ['CURRENT as a folder', async () => {
      await version('v1', '2026-01-01T00:00:00Z');
      await mkdir(join(root, 'CURRENT'));
    }, 'RAG_FS_SPECIAL_FILE', /CURRENT is not a regular file/],
    ['a version whose manifest is not JSON', async () => {
      await version('v1', null);
      await writeFile(join(root, 'v1', 'manifest.json'), '{');
      await writeFile(join(root, 'CURRENT'), 'v1');
    }, 'RAG_STORE_MANIFEST_INVALID', /manifest\.json in .* is not valid JSON/],
    ['a manifest that does not list chroma.sqlite3', async () => {
      await version('v1', null);
      await writeFile(join(root, 'v1', 'manifest.json'), manifest('v1', '2026-01-01T00:00:00Z', []));
    }, 'RAG_STORE_FILE_MISSING', /store v1 has no chroma\.sqlite3/],
    ['a manifest listing a path outside the store', async () => {
      await version('v1', null);
      await writeFile(join(root, 'v1', 'manifest.json'), manifest('v1', '2026-01-01T00:00:00Z', ['chroma.sqlite3', '../x']));
    }, 'RAG_STORE_MANIFEST_INVALID', /lists a path outside the store: \.\.\/x/],
    ['a listed file that is a link leaving the root', async () => {
      await version('v1', null, {});
      await writeFile(join(root, 'v1', 'manifest.json'), manifest('v1', '2026-01-01T00:00:00Z', ['chroma.sqlite3', 'seg.bin']));
      await symlink('/etc/hostname', join(root, 'v1', 'seg.bin'));
    }, 'RAG_FS_LINK_OUTSIDE_ROOT', /seg\.bin/],
  ];

  it.each(REJECTIONS)('rejects %s', async (_name, setUp, code, message) => {
    await setUp();
    const got = await rejection(resolveStore(root));
    expect(got.code).toBe(code);
    expect(got.message).toMatch(message);
  });

  it('a flat store with an open SQLite writer waits (WriterActiveError), naming the writer files', async () => {
    await flat();
    await writeFile(join(root, 'chroma.sqlite3-wal'), '');
    const err = await resolveStore(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriterActiveError);
    expect((err as WriterActiveError).code).toBe('RAG_STORE_WRITE_IN_PROGRESS');
    expect((err as WriterActiveError).files).toEqual(['chroma.sqlite3-wal']);
  });

  it('honours an aborted signal', async () => {
    await version('v1', '2026-01-01T00:00:00Z');
    const ac = new AbortController();
    ac.abort();
    expect((await rejection(resolveStore(root, ac.signal))).code).toBe('RAG_RELOAD_CANCELLED');
  });
});
