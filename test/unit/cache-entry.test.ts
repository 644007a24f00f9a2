import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pruneCacheDir, writeCacheEntry } from '../../src/fs/cache-entry.js';

/** src/fs/cache-entry.ts on real files: whole entries, and pruning that keeps the newest and live writers' temp files. */
let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'rag-cache-entry-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('cache entries', () => {
  it('writes the parts in order into a 0600 file inside a 0700 folder, and leaves no temp file', async () => {
    const dir = join(root, 'c');
    const file = join(dir, 'a.json');
    const bytes = await writeCacheEntry(dir, file, [Buffer.from('he'), Buffer.from('llo')]);
    expect(bytes).toBe(5);
    expect(await readFile(file, 'utf8')).toBe('hello');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['a.json']);
  });

  it('a failed write throws and removes its temp file (the target is a folder: the rename fails)', async () => {
    const dir = join(root, 'c');
    await writeCacheEntry(dir, join(dir, 'x'), [Buffer.from('1')]);
    await rm(join(dir, 'x'));
    await writeCacheEntry(dir, join(dir, 'sub', 'y'), [Buffer.from('1')]).then(
      () => expect.fail('the write should fail'),
      (err: NodeJS.ErrnoException) => expect(err.code).toBe('ENOENT'),
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('pruning keeps the newest entries (the pinned one first), other suffixes, and live processes’ temp files', async () => {
    const dir = join(root, 'c');
    const t = Date.now() / 1000;
    for (const [name, age] of [['old.idx', 300], ['mid.idx', 200], ['new.idx', 100], ['pinned.idx', 1000]] as const) {
      await writeCacheEntry(dir, join(dir, name), [Buffer.from(name)]);
      await utimes(join(dir, name), t - age, t - age);
    }
    await writeFile(join(dir, 'other.json'), '{}');
    await writeFile(join(dir, `.tmp-p${process.pid}-aaaa`), 'mine, still being written');
    await writeFile(join(dir, '.tmp-p999999999-bbbb'), 'a dead process');
    await pruneCacheDir(dir, { suffix: '.idx', keep: 2, pinned: join(dir, 'pinned.idx') });
    expect((await readdir(dir)).sort()).toEqual([`.tmp-p${process.pid}-aaaa`, 'new.idx', 'other.json', 'pinned.idx']);
  });
});
