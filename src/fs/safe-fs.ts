import { constants, type BigIntStats } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { RagError, type ErrorCode } from '../errors.js';
import { copyThread } from './copy-thread.js';

/**
 * The one place that touches untrusted files in ./vectorstore and ./models: every entry is
 * lstat-ed before anything opens it, special files (devices, FIFOs, sockets) are refused before
 * open, links are followed only when they resolve inside the watched root, and files are
 * opened with O_NOFOLLOW | O_NONBLOCK and checked again with fstat, so a FIFO or a device swapped
 * in between never blocks a libuv thread. Reads are chunked and check an AbortSignal, so every
 * caller can be cancelled.
 */

export type EntryKind = 'file' | 'dir' | 'fifo' | 'socket' | 'char-device' | 'block-device' | 'other';

export interface TreeEntry {
  /** Path relative to the walked folder, '/'-separated. */
  rel: string;
  kind: EntryKind;
  size: number;
  /** 512-byte blocks allocated (sparse files have fewer than size / 512). */
  blocks: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  /** The entry is reached through a symbolic link (resolved inside the root). */
  viaLink: boolean;
}

export type FsProblemCode = Extract<ErrorCode, `RAG_FS_${string}`>;

export interface FsProblem {
  rel: string;
  code: FsProblemCode;
  message: string;
}

export interface WalkResult {
  entries: TreeEntry[];
  problems: FsProblem[];
}

export interface WalkOptions {
  /** Entries (and folders) to leave out, by relative path; called before anything is opened. */
  skip?: (rel: string) => boolean;
  /** Links must resolve inside this folder (default: the walked folder). */
  root?: string;
  signal?: AbortSignal;
  /** Stop after this many entries (a huge tree is a problem, not a hang). */
  maxEntries?: number;
}

function kindOf(s: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): EntryKind {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isFIFO()) return 'fifo';
  if (s.isSocket()) return 'socket';
  if (s.isCharacterDevice()) return 'char-device';
  if (s.isBlockDevice()) return 'block-device';
  return 'other';
}

const SPECIAL_NAMES: Record<EntryKind, string> = {
  file: 'file',
  dir: 'folder',
  fifo: 'FIFO (named pipe)',
  socket: 'socket',
  'char-device': 'character device',
  'block-device': 'block device',
  other: 'special file',
};

export function isInside(root: string, path: string): boolean {
  const r = relative(root, path);
  return r === '' || (!r.startsWith('..') && !r.startsWith(sep) && r !== '..');
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof RagError ? reason : new RagError('RAG_RELOAD_CANCELLED', 'the build was cancelled', { cause: reason });
  }
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** One problem per bad entry, with a message that names the entry and what to do. */
function problemFor(rel: string, err: unknown): FsProblem {
  const code = errnoCode(err);
  if (code === 'ELOOP') return { rel, code: 'RAG_FS_LINK_LOOP', message: `${rel} is a symbolic link loop; remove the link` };
  if (code === 'EACCES' || code === 'EPERM') {
    return { rel, code: 'RAG_FS_UNREADABLE', message: `${rel} cannot be read by the service (permission denied); fix its permissions (chmod/chown)` };
  }
  return { rel, code: 'RAG_FS_UNREADABLE', message: `${rel} cannot be read (${code ?? (err as Error)?.message ?? 'unknown error'})` };
}

/**
 * Walk a folder without following anything out of the root and without opening any file:
 * regular files and folders become entries; links inside the root are resolved (and loops
 * broken); links leaving the root, link loops, special files and unreadable entries become
 * problems. Never throws for a bad entry; throws RAG_FS_UNREADABLE only when the folder itself
 * cannot be listed, and RAG_RELOAD_CANCELLED when aborted.
 */
export async function walkTree(dir: string, options: WalkOptions = {}): Promise<WalkResult> {
  const entries: TreeEntry[] = [];
  const problems: FsProblem[] = [];
  const rootReal = await realpath(options.root ?? dir).catch(() => options.root ?? dir);
  const max = options.maxEntries ?? 200_000;
  const visited = new Set<string>();

  const visit = async (abs: string, rel: string, viaLink: boolean): Promise<void> => {
    throwIfAborted(options.signal);
    if (entries.length + problems.length >= max) {
      if (!problems.some((p) => p.code === 'RAG_FS_TOO_MANY_ENTRIES')) {
        problems.push({ rel, code: 'RAG_FS_TOO_MANY_ENTRIES', message: `more than ${max} entries; the folder is not a store or model folder` });
      }
      return;
    }
    let st;
    try {
      st = await lstat(abs, { bigint: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return; // deleted while we walked: the settle loop will see it
      problems.push(problemFor(rel || '.', err));
      return;
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = await realpath(abs);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') {
          problems.push({ rel, code: 'RAG_FS_LINK_BROKEN', message: `${rel} is a symbolic link to something that does not exist` });
        } else problems.push(problemFor(rel, err));
        return;
      }
      if (!isInside(rootReal, target)) {
        problems.push({ rel, code: 'RAG_FS_LINK_OUTSIDE_ROOT', message: `${rel} is a symbolic link leaving ${rootReal} (to ${target}); copy the files in instead of linking them` });
        return;
      }
      await visitResolved(target, rel, true);
      return;
    }
    await visitStat(abs, rel, st, viaLink);
  };

  const visitResolved = async (target: string, rel: string, viaLink: boolean): Promise<void> => {
    let st;
    try {
      st = await lstat(target, { bigint: true });
    } catch (err) {
      problems.push(problemFor(rel, err));
      return;
    }
    await visitStat(target, rel, st, viaLink);
  };

  const visitStat = async (abs: string, rel: string, st: BigIntStats, viaLink: boolean): Promise<void> => {
    const kind = kindOf(st);
    if (kind === 'dir') {
      const real = await realpath(abs).catch(() => abs);
      if (visited.has(real)) {
        problems.push({ rel, code: 'RAG_FS_LINK_LOOP', message: `${rel} leads back to a folder already seen (a symbolic link loop); remove the link` });
        return;
      }
      visited.add(real);
      if (rel) entries.push({ rel, kind, size: 0, blocks: 0, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, viaLink });
      let names: string[];
      try {
        names = await readdir(abs);
      } catch (err) {
        if (!rel) throw new RagError(problemFor('.', err).code, `${dir} cannot be listed: ${(err as Error).message}`, { cause: err });
        problems.push(problemFor(rel, err));
        return;
      }
      names.sort();
      for (const name of names) {
        const childRel = rel ? `${rel}/${name}` : name;
        if (options.skip?.(childRel)) continue;
        await visit(join(abs, name), childRel, viaLink);
      }
      return;
    }
    if (kind !== 'file') {
      problems.push({
        rel,
        code: 'RAG_FS_SPECIAL_FILE',
        message: `${rel} is a ${SPECIAL_NAMES[kind]}${viaLink ? ' (through a symbolic link)' : ''}, not a regular file; only regular files are read`,
      });
      return;
    }
    entries.push({ rel, kind, size: Number(st.size), blocks: Number(st.blocks), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, viaLink });
  };

  let top;
  try {
    top = await lstat(dir, { bigint: true });
  } catch (err) {
    throw new RagError(errnoCode(err) === 'ENOENT' ? 'RAG_FS_NOT_FOUND' : problemFor('.', err).code, `${dir} does not exist or cannot be read`, { cause: err });
  }
  if (top.isSymbolicLink()) {
    let target: string;
    try {
      target = await realpath(dir);
    } catch (err) {
      throw new RagError(problemFor('.', err).code, `${dir} is a broken symbolic link or a link loop`, { cause: err });
    }
    if (options.root && !isInside(rootReal, target)) {
      throw new RagError('RAG_FS_LINK_OUTSIDE_ROOT', `${dir} is a symbolic link leaving ${rootReal} (to ${target}); copy the files in instead of linking them`);
    }
    await visitResolved(target, '', true);
  } else {
    if (!top.isDirectory()) throw new RagError('RAG_FS_NOT_FOUND', `${dir} is not a folder`);
    await visitStat(dir, '', top, false);
  }
  return { entries, problems };
}

/**
 * Open a file for reading only if it is a regular file inside root: lstat first (links
 * resolved only inside root), O_NOFOLLOW | O_NONBLOCK so a FIFO can never block the open, then
 * fstat to check the opened inode is the regular file we looked at.
 */
export async function openRegularFile(path: string, root: string): Promise<{ fh: FileHandle; size: number; rel: string }> {
  const rootReal = await realpath(root).catch(() => root);
  const rel = relative(root, path).split(sep).join('/') || path;
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new RagError('RAG_FS_NOT_FOUND', `${rel} does not exist`, { cause: err, details: { file: rel } });
    const p = problemFor(rel, err);
    throw new RagError(p.code, p.message, { cause: err, details: { file: rel } });
  }
  if (!isInside(rootReal, real)) {
    throw new RagError('RAG_FS_LINK_OUTSIDE_ROOT', `${rel} is a symbolic link leaving ${rootReal} (to ${real}); copy the file in instead of linking it`, { details: { file: rel } });
  }
  // A regular file renamed over the path between the lstat and the open (an atomic publish of
  // CURRENT) is the same check again, not an attack: up to three looks before giving up.
  for (let attempt = 1; ; attempt++) {
    const before = await lstat(real, { bigint: true }).catch((err: unknown) => {
      const p = problemFor(rel, err);
      throw new RagError(p.code, p.message, { cause: err, details: { file: rel } });
    });
    const kind = kindOf(before);
    if (kind !== 'file') {
      throw new RagError('RAG_FS_SPECIAL_FILE', `${rel} is a ${SPECIAL_NAMES[kind]}, not a regular file; only regular files are read`, { details: { file: rel } });
    }
    let fh: FileHandle;
    try {
      fh = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const p = problemFor(rel, err);
      throw new RagError(p.code, p.message, { cause: err, details: { file: rel } });
    }
    const st = await fh.stat({ bigint: true });
    if (st.isFile() && st.ino === before.ino && st.dev === before.dev) return { fh, size: Number(st.size), rel };
    await fh.close();
    if (!st.isFile() || attempt === 3) {
      throw new RagError('RAG_FS_SPECIAL_FILE', `${rel} was replaced by something that is not a regular file while it was opened`, { details: { file: rel } });
    }
  }
}

/**
 * Bytes per read of a file's contents hashed on the event loop (fingerprint.ts), one read at a
 * time: 256 KiB keeps each step to about a millisecond, so a checksum never stalls the requests
 * served meanwhile (4 MiB steps took 10-20 ms on a loaded 2-core machine).
 */
export const READ_STEP = 256 << 10;

/** A small text file (CURRENT, manifest.json, acceptance.json) read safely, capped. */
export async function readSmallFileSafe(path: string, root: string, maxBytes = 4 << 20, options: { strictUtf8?: boolean } = {}): Promise<string> {
  const { fh, size, rel } = await openRegularFile(path, root);
  try {
    if (size > maxBytes) throw new RagError('RAG_FS_TOO_LARGE', `${rel} has ${size} bytes; at most ${maxBytes} are read`, { details: { file: rel } });
    const buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off);
      if (bytesRead === 0) break;
      off += bytesRead;
    }
    if (!options.strictUtf8) return buf.subarray(0, off).toString('utf8');
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, off));
    } catch (cause) {
      throw new RagError('RAG_FS_UNREADABLE', `${rel} is not valid UTF-8 text`, { cause, details: { file: rel } });
    }
  } finally {
    await fh.close();
  }
}

/** Translate a write failure in the runtime folder (full, read-only, no permission). */
export function runtimeWriteError(err: unknown, runtimeDir: string): RagError {
  if (err instanceof RagError) return err;
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new RagError('RAG_RUNTIME_NO_SPACE', `RUNTIME_DIR ${runtimeDir} is full; free space there or point RUNTIME_DIR at a bigger disk`, { cause: err });
  }
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
    return new RagError('RAG_RUNTIME_NOT_WRITABLE', `RUNTIME_DIR ${runtimeDir} is not writable (${code}); make it writable or point RUNTIME_DIR elsewhere`, { cause: err });
  }
  return new RagError('RAG_RUNTIME_NOT_WRITABLE', `cannot write to RUNTIME_DIR ${runtimeDir}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

/** Free bytes on the filesystem holding dir (null when unknown). */
export async function freeBytes(dir: string): Promise<number | null> {
  try {
    const s = await statfs(dir, { bigint: true });
    return Number(s.bavail * s.bsize);
  } catch {
    return null;
  }
}

/**
 * Copy a regular file inside srcRoot to a new private file (never through a link at the target),
 * sparse files kept sparse, returning the sha256 and size of the bytes copied. The files are
 * opened here, with the checks of openRegularFile; the bytes are read, hashed and written by the
 * file-copy thread (copy-thread.ts), off the event loop. A write failure is a RAG_RUNTIME_* error.
 */
export async function copyFileSafe(
  src: string,
  srcRoot: string,
  dst: string,
  options: { signal?: AbortSignal; runtimeDir: string },
): Promise<{ sha256: string; size: number }> {
  const { fh } = await openRegularFile(src, srcRoot);
  let out: FileHandle | undefined;
  try {
    try {
      await mkdir(dirname(dst), { recursive: true });
      out = await open(dst, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw runtimeWriteError(err, options.runtimeDir);
    }
    throwIfAborted(options.signal);
    const r = await copyThread.copy(fh, out, options.signal);
    if ('aborted' in r) {
      throwIfAborted(options.signal);
      throw new RagError('RAG_RELOAD_CANCELLED', 'the copy was cancelled');
    }
    if ('error' in r) {
      const err = Object.assign(new Error(r.error.message), r.error.code ? { code: r.error.code } : {});
      throw r.error.side === 'write' ? runtimeWriteError(err, options.runtimeDir) : err;
    }
    return r;
  } finally {
    // A copy given up while its thread was stuck keeps its files open (copy-thread.ts).
    if (!copyThread.keptOpen(fh)) {
      await fh.close();
      await out?.close();
    }
  }
}

/**
 * The sha256 and size of a file checked where it is (not copied): opened as copyFileSafe opens
 * it (a regular file inside `srcRoot`), read and hashed on the file-copy thread.
 */
export async function hashFileSafe(src: string, srcRoot: string, options: { signal?: AbortSignal } = {}): Promise<{ sha256: string; size: number }> {
  const { fh } = await openRegularFile(src, srcRoot);
  try {
    throwIfAborted(options.signal);
    const r = await copyThread.copy(fh, null, options.signal);
    if ('aborted' in r) {
      throwIfAborted(options.signal);
      throw new RagError('RAG_RELOAD_CANCELLED', 'the check was cancelled');
    }
    if ('error' in r) throw Object.assign(new Error(r.error.message), r.error.code ? { code: r.error.code } : {});
    return r;
  } finally {
    if (!copyThread.keptOpen(fh)) await fh.close();
  }
}

/** The first problem as an error (the code of the most serious kind first). */
export function problemError(problems: FsProblem[], where: string): RagError | null {
  if (problems.length === 0) return null;
  const order: FsProblemCode[] = ['RAG_FS_SPECIAL_FILE', 'RAG_FS_LINK_LOOP', 'RAG_FS_LINK_OUTSIDE_ROOT', 'RAG_FS_LINK_BROKEN', 'RAG_FS_UNREADABLE', 'RAG_FS_TOO_MANY_ENTRIES'];
  const sorted = [...problems].sort((a, b) => order.indexOf(a.code) - order.indexOf(b.code));
  const first = sorted[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  return new RagError(first.code, `${where}: ${first.message}${more}`, { details: { problems: problems.slice(0, 20) } });
}
