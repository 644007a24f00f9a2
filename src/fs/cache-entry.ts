import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { pidAlive } from '../process-alive.js';

/**
 * Entries of the service's caches in RUNTIME_DIR (the serving index cache, the model facts cache):
 * each written whole or not at all, and each folder pruned to its newest few. Temp files are
 * `.tmp-p<pid>-t<threadId>-<random>`, so one left by a process that died is recognised and
 * removed, and so is one left by a thread its owner terminated mid-write (removeThreadTemps).
 */
const TMP = /^\.tmp-p(\d+)-/;

function threadTempPrefix(thread: number): string {
  return `.tmp-p${process.pid}-t${thread}-`;
}

/**
 * Remove the temp files a thread of this process left in `dir` (call it once the thread is
 * terminated: a thread ended mid-write never reaches its own clean-up). A missing folder is fine.
 */
export async function removeThreadTemps(dir: string, thread: number): Promise<void> {
  const prefix = threadTempPrefix(thread);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(dir, n), { force: true })));
}

/**
 * Write `file` (inside `dir`, created 0700) from `parts`: an exclusive 0600 temp file, fsync,
 * rename. The temp file is removed on failure, which is thrown. Returns the bytes written.
 */
export async function writeCacheEntry(dir: string, file: string, parts: readonly Uint8Array[]): Promise<number> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `${threadTempPrefix(threadId)}${randomBytes(4).toString('hex')}`);
  let bytes = 0;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      for (const part of parts) {
        await fh.write(part);
        bytes += part.length;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  return bytes;
}

/**
 * Keep the newest `keep` entries whose names end in `suffix` (by mtime; `pinned`, the one just
 * written, counts as newest) and remove the temp files of processes that are gone.
 */
export async function pruneCacheDir(dir: string, options: { suffix: string; keep: number; pinned?: string }): Promise<void> {
  const entries: Array<{ path: string; mtimeMs: number }> = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const tmpPid = Number(TMP.exec(name)?.[1]);
    if (tmpPid) {
      if (tmpPid !== process.pid && !pidAlive(tmpPid)) await rm(path, { force: true });
      continue;
    }
    if (!name.endsWith(options.suffix)) continue;
    const s = await stat(path).catch(() => null);
    if (s) entries.push({ path, mtimeMs: path === options.pinned ? Infinity : s.mtimeMs });
  }
  entries.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const e of entries.slice(options.keep)) await rm(e.path, { force: true });
}
