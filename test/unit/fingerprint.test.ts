import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileStamp, folderFingerprint, hashFileSafe, isDotPath, sha256File } from '../../src/fs/fingerprint.js';
import { ticksDuring } from '../helpers/ticks.js';

/** src/fs/fingerprint.ts on real files: what changes a fingerprint or a stamp, and what does not. */
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rag-fp-'));
  await mkdir(join(dir, 'onnx'));
  await writeFile(join(dir, 'config.json'), '{"a":1}');
  await writeFile(join(dir, 'onnx', 'model.onnx'), Buffer.alloc(1000, 7));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fp = async () => (await folderFingerprint(dir)).fingerprint;

describe('dot paths', () => {
  it.each([
    ['.tmp', true],
    ['a/.partial/b', true],
    ['a/b.c', false],
    ['v1/chroma.sqlite3', false],
    ['..x', true],
  ])('%j -> %s', (rel, want) => {
    expect(isDotPath(rel)).toBe(want);
  });
});

describe('folder fingerprints', () => {
  it('are 16 hex digits and stable while nothing is written', async () => {
    const a = await fp();
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(await fp()).toBe(a);
  });

  it('change when a file is rewritten with the same size and its mtime set back (ctime moves)', async () => {
    const a = await fp();
    const past = new Date('2020-01-01T00:00:00Z');
    await utimes(join(dir, 'config.json'), past, past);
    const b = await fp();
    expect(b).not.toBe(a);
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(join(dir, 'config.json'), '{"a":2}');
    await utimes(join(dir, 'config.json'), past, past);
    expect(await fp()).not.toBe(b);
  });

  it('change when a file is added, removed or renamed', async () => {
    const a = await fp();
    await writeFile(join(dir, 'extra.txt'), 'x');
    const b = await fp();
    expect(b).not.toBe(a);
    await rename(join(dir, 'extra.txt'), join(dir, 'other.txt'));
    const c = await fp();
    expect(c).not.toBe(b);
    await rm(join(dir, 'other.txt'));
    expect(await fp()).toBe(a);
  });

  it('leave out dot entries (work in progress) and what skip leaves out', async () => {
    const a = await fp();
    await mkdir(join(dir, '.incoming'));
    await writeFile(join(dir, '.incoming', 'model.onnx'), 'partial');
    await writeFile(join(dir, '.tmp-config.json'), 'x');
    expect(await fp()).toBe(a);
    await writeFile(join(dir, 'README.md'), 'x');
    const skipped = await folderFingerprint(dir, { skip: (rel) => rel === 'README.md' });
    expect(skipped.fingerprint).toBe(a);
    expect(skipped.walk.entries.map((e) => e.rel).sort()).toEqual(['config.json', 'onnx', 'onnx/model.onnx']);
  });

  it('count a bad entry as a problem, not a crash', async () => {
    const a = await fp();
    await symlink('/etc/hostname', join(dir, 'escape'));
    const r = await folderFingerprint(dir);
    expect(r.walk.problems.map((p) => p.code)).toEqual(['RAG_FS_LINK_OUTSIDE_ROOT']);
    expect(r.fingerprint).not.toBe(a);
  });

  it('a missing folder is RAG_FS_NOT_FOUND', async () => {
    await expect(folderFingerprint(join(dir, 'nope'))).rejects.toMatchObject({ code: 'RAG_FS_NOT_FOUND' });
  });
});

describe('file stamps', () => {
  const FILES = ['config.json', 'tokenizer.json', 'onnx/model.onnx'];

  it('name each file with size, mtime and inode, "-" when missing', async () => {
    const s = await fileStamp(dir, FILES);
    const parts = s.split('|');
    expect(parts).toHaveLength(3);
    expect(parts[0]).toMatch(/^config\.json:7:[\d.]+:\d+$/);
    expect(parts[1]).toBe('tokenizer.json:-');
    expect(parts[2]).toMatch(/^onnx\/model\.onnx:1000:[\d.]+:\d+$/);
  });

  it('change when a named file is replaced by rename (new inode), not when another file changes', async () => {
    const a = await fileStamp(dir, FILES);
    await writeFile(join(dir, 'unrelated.bin'), 'x');
    expect(await fileStamp(dir, FILES)).toBe(a);
    await writeFile(join(dir, 'config.json.new'), '{"a":1}');
    await rename(join(dir, 'config.json.new'), join(dir, 'config.json'));
    expect(await fileStamp(dir, FILES)).not.toBe(a);
  });
});

describe('content hashes', () => {
  const big = Buffer.alloc(5 * (1 << 20) + 123);
  for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
  const want = createHash('sha256').update(big).digest('hex');

  it('sha256File and hashFileSafe give the sha256 of the bytes, across many read steps', async () => {
    await writeFile(join(dir, 'big.bin'), big);
    expect(await sha256File(join(dir, 'big.bin'))).toBe(want);
    expect(await hashFileSafe(join(dir, 'big.bin'), dir)).toEqual({ sha256: want, size: big.length });
    expect(await sha256File(join(dir, 'config.json'))).toBe(createHash('sha256').update('{"a":1}').digest('hex'));
  });

  it('hashing yields to the event loop between read steps (it never holds it for a whole file)', async () => {
    await writeFile(join(dir, 'big.bin'), big);
    for (const hash of [() => sha256File(join(dir, 'big.bin')), () => hashFileSafe(join(dir, 'big.bin'), dir)]) {
      const { ticks: turns } = await ticksDuring<unknown>(hash);
      // Six 1 MiB steps: the loop must have run other work between them.
      expect(turns).toBeGreaterThanOrEqual(3);
    }
  });

  it('hashFileSafe is cancellable', async () => {
    await writeFile(join(dir, 'big.bin'), big);
    const ac = new AbortController();
    ac.abort();
    await expect(hashFileSafe(join(dir, 'big.bin'), dir, ac.signal)).rejects.toMatchObject({ code: 'RAG_RELOAD_CANCELLED' });
  });
});
