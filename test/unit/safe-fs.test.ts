import { execFileSync } from 'node:child_process';
import { mkdir, open, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hashFileSafe } from '../../src/fs/fingerprint.js';
import { copyFileSafe, openRegularFile, walkTree } from '../../src/fs/safe-fs.js';
import { tempDir } from '../helpers/harness.js';

let t: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  t = await tempDir('rag-t-fs-');
});
afterEach(async () => {
  await t.cleanup();
});

/** Any call that would block on a FIFO must settle quickly (a hang fails the test by timeout). */
async function settlesQuickly<T>(p: Promise<T>): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error('blocked')), 5_000))]);
}

describe('src/fs: untrusted files', () => {
  it('walks without opening anything: FIFOs, sockets, devices, loops and links leaving the root are problems with codes', async () => {
    const root = join(t.dir, 'root');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'ok.txt'), 'x');
    execFileSync('mkfifo', [join(root, 'fifo')]);
    execFileSync('mknod', [join(root, 'null-dev'), 'c', '1', '3']);
    const sock = createServer();
    await new Promise<void>((r) => sock.listen(join(root, 'sock'), () => r()));
    await symlink('loop', join(root, 'loop'));
    await symlink('/etc', join(root, 'outside'));
    await symlink('/dev/zero', join(root, 'zero'));
    await symlink('..', join(root, 'sub', 'up')); // back to root: a loop through a folder link
    await symlink('ok.txt', join(root, 'inside-link'));
    const walk = await settlesQuickly(walkTree(root));
    sock.close();
    const byRel = Object.fromEntries(walk.problems.map((p) => [p.rel, p.code]));
    expect(byRel).toMatchObject({
      fifo: 'RAG_FS_SPECIAL_FILE',
      'null-dev': 'RAG_FS_SPECIAL_FILE',
      sock: 'RAG_FS_SPECIAL_FILE',
      loop: 'RAG_FS_LINK_LOOP',
      outside: 'RAG_FS_LINK_OUTSIDE_ROOT',
      zero: 'RAG_FS_LINK_OUTSIDE_ROOT',
      'sub/up': 'RAG_FS_LINK_LOOP',
    });
    expect(walk.entries.map((e) => e.rel)).toEqual(expect.arrayContaining(['ok.txt', 'inside-link', 'sub']));
    expect(walk.entries.find((e) => e.rel === 'inside-link')?.viaLink).toBe(true);
  });

  it('never opens a FIFO (no writer: a blocking open would hang a thread for ever)', async () => {
    execFileSync('mkfifo', [join(t.dir, 'pipe')]);
    await expect(settlesQuickly(hashFileSafe(join(t.dir, 'pipe'), t.dir))).rejects.toMatchObject({ code: 'RAG_FS_SPECIAL_FILE' });
    await symlink('pipe', join(t.dir, 'to-pipe'));
    await expect(settlesQuickly(openRegularFile(join(t.dir, 'to-pipe'), t.dir))).rejects.toMatchObject({ code: 'RAG_FS_SPECIAL_FILE' });
    await symlink('/dev/zero', join(t.dir, 'dev-zero'));
    await expect(settlesQuickly(hashFileSafe(join(t.dir, 'dev-zero'), t.dir))).rejects.toMatchObject({ code: 'RAG_FS_LINK_OUTSIDE_ROOT' });
  });

  it('copies keep sparse files sparse, hash the bytes copied, and never write through a link at the target', async () => {
    const src = join(t.dir, 'sparse.bin');
    const fh = await open(src, 'w');
    await fh.write(Buffer.from('head'), 0, 4, 0);
    await fh.write(Buffer.from('tail'), 0, 4, 64 * 1024 * 1024);
    await fh.close();
    const dst = join(t.dir, 'out', 'sparse.bin');
    const res = await copyFileSafe(src, t.dir, dst, { runtimeDir: t.dir });
    const s = await stat(dst);
    expect(s.size).toBe(64 * 1024 * 1024 + 4);
    expect(s.blocks * 512).toBeLessThan(1024 * 1024);
    expect(res.sha256).toBe((await hashFileSafe(src, t.dir)).sha256);
    await symlink('/tmp/should-not-be-written', join(t.dir, 'out', 'trap'));
    await expect(copyFileSafe(src, t.dir, join(t.dir, 'out', 'trap'), { runtimeDir: t.dir })).rejects.toMatchObject({ code: 'RAG_RUNTIME_NOT_WRITABLE' });
  });

  it('a copy is cancellable between chunks', async () => {
    const src = join(t.dir, 'big.bin');
    await writeFile(src, Buffer.alloc(32 * 1024 * 1024, 1));
    const ctl = new AbortController();
    ctl.abort();
    await expect(copyFileSafe(src, t.dir, join(t.dir, 'copy.bin'), { runtimeDir: t.dir, signal: ctl.signal })).rejects.toMatchObject({ code: 'RAG_RELOAD_CANCELLED' });
  });
});
