import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CopyThread } from '../../src/fs/copy-thread.js';
import { copyFileSafe } from '../../src/fs/safe-fs.js';
import { tempDir } from '../helpers/harness.js';

let t: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  t = await tempDir('rag-t-copy-');
});
afterEach(async () => {
  await t.cleanup();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('file-copy thread (snapshot copies off the event loop)', () => {
  it('copies and hashes what it copied; a file of several 1 MiB blocks with holes and data at the end stays sparse', async () => {
    const src = join(t.dir, 'src.bin');
    const fh = await open(src, 'w');
    await fh.write(Buffer.from('head'), 0, 4, 0);
    await fh.write(Buffer.alloc(70_000, 7), 0, 70_000, 3 << 20); // data after 3 MiB of hole
    await fh.write(Buffer.from('tail'), 0, 4, (5 << 20) + 123);
    await fh.close();
    const res = await copyFileSafe(src, t.dir, join(t.dir, 'out', 'dst.bin'), { runtimeDir: t.dir });
    const want = await readFile(src);
    const got = await readFile(join(t.dir, 'out', 'dst.bin'));
    expect(res).toEqual({ sha256: sha(want), size: want.length });
    expect(got.equals(want)).toBe(true);
    const st = await stat(join(t.dir, 'out', 'dst.bin'));
    expect(st.blocks * 512).toBeLessThan(1 << 20); // holes not written
  });

  it('an empty file copies to an empty file', async () => {
    await writeFile(join(t.dir, 'empty'), '');
    const res = await copyFileSafe(join(t.dir, 'empty'), t.dir, join(t.dir, 'empty.copy'), { runtimeDir: t.dir });
    expect(res).toEqual({ sha256: sha(Buffer.alloc(0)), size: 0 });
  });

  it('a cancel stops a copy at its next block, with RAG_RELOAD_CANCELLED, and the thread serves the next copy', async () => {
    const src = join(t.dir, 'big.bin');
    await writeFile(src, Buffer.alloc(64 << 20, 1));
    const ctl = new AbortController();
    const copying = copyFileSafe(src, t.dir, join(t.dir, 'big.copy'), { runtimeDir: t.dir, signal: ctl.signal });
    setTimeout(() => ctl.abort(), 5);
    await expect(copying).rejects.toMatchObject({ code: 'RAG_RELOAD_CANCELLED' });
    expect((await stat(join(t.dir, 'big.copy'))).size).toBeLessThan(64 << 20);
    await writeFile(join(t.dir, 'small'), 'abc');
    await expect(copyFileSafe(join(t.dir, 'small'), t.dir, join(t.dir, 'small.copy'), { runtimeDir: t.dir })).resolves.toEqual({ sha256: sha(Buffer.from('abc')), size: 3 });
  });

  it('a copy stuck in a read that never returns is given up after the grace period: it rejects, its files stay open, and the next copy gets a new thread', async () => {
    const copier = new CopyThread({ idleMs: 60_000, cancelGraceMs: 200, nice: 0 });
    const fifo = join(t.dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // Opened read-write, so the open does not wait for a writer; a read then waits for data forever.
    const src = await open(fifo, constants.O_RDWR);
    const dst = await open(join(t.dir, 'stuck.copy'), 'w');
    const ctl = new AbortController();
    const stuck = copier.copy(src, dst, ctl.signal);
    // Some bytes first: once they are in the copy, the thread is past its first read and its next
    // one waits for data that never comes (aborting earlier would stop it between blocks).
    await src.write(Buffer.from('0123456789'));
    for (let i = 0; i < 500 && (await stat(join(t.dir, 'stuck.copy'))).size < 10; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await stat(join(t.dir, 'stuck.copy'))).size).toBe(10);
    await new Promise((r) => setTimeout(r, 200));
    const first = copier.threadId;
    ctl.abort();
    await expect(stuck).rejects.toMatchObject({ code: 'RAG_RELOAD_CANCELLED', message: expect.stringContaining('did not stop within 200 ms') });
    expect(copier.keptOpen(src) && copier.keptOpen(dst)).toBe(true);
    await writeFile(join(t.dir, 'ok'), 'fine');
    const a = await open(join(t.dir, 'ok'), 'r');
    const b = await open(join(t.dir, 'ok.copy'), 'w');
    await expect(copier.copy(a, b)).resolves.toEqual({ sha256: sha(Buffer.from('fine')), size: 4 });
    expect(copier.threadId).not.toBe(first);
    await a.close();
    await b.close();
    // Unblock the stuck thread so it can end, then close what it held.
    await src.write(Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 100));
    await src.close();
    await dst.close();
  });

  it('the thread ends after its idle time and a later copy starts a new one', async () => {
    const copier = new CopyThread({ idleMs: 100, cancelGraceMs: 1000, nice: 0 });
    await writeFile(join(t.dir, 'f'), 'data');
    const once = async (name: string) => {
      const a = await open(join(t.dir, 'f'), 'r');
      const b = await open(join(t.dir, name), 'w');
      try {
        return await copier.copy(a, b);
      } finally {
        await a.close();
        await b.close();
      }
    };
    await once('c1');
    const first = copier.threadId;
    expect(first).not.toBeNull();
    await new Promise((r) => setTimeout(r, 400));
    expect(copier.threadId).toBeNull();
    await expect(once('c2')).resolves.toMatchObject({ size: 4 });
    expect(copier.threadId).not.toBe(first);
  });

  it('a write that fails (the target opened read-only) is reported as a write failure with its errno code', async () => {
    const copier = new CopyThread({ idleMs: 1000, cancelGraceMs: 1000, nice: 0 });
    await writeFile(join(t.dir, 'f'), 'data');
    await writeFile(join(t.dir, 'ro'), '');
    const a = await open(join(t.dir, 'f'), 'r');
    const b = await open(join(t.dir, 'ro'), 'r');
    await expect(copier.copy(a, b)).resolves.toMatchObject({ error: { side: 'write', code: 'EBADF' } });
    await a.close();
    await b.close();
  });
});
