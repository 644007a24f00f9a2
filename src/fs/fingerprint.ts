import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openRegularFile, READ_STEP, throwIfAborted, walkTree, type WalkOptions, type WalkResult } from './safe-fs.js';

/**
 * The one way this service tells whether files changed. Three tools, from cheapest to dearest:
 * - folder fingerprints (`folderFingerprint`, `fingerprintOf`): metadata of every entry in a walk,
 *   no file opened; the watcher, the store layout and the model source use them.
 * - file stamps (`fileStamp`): size, mtime and inode of a few named files; the model loader's
 *   cache of parsed folder facts uses it.
 * - content hashes (`sha256File`, `hashFileSafe`; `copyFileSafe` in safe-fs.ts hashes what it
 *   copies): sha256 of the bytes, streamed in READ_STEP reads so no hash step holds the event
 *   loop for long; manifests, snapshots and model ids use them. `sha256Hex` hashes bytes already
 *   in memory, and `sourceTag` the code that writes a cache, so a code change never reuses it.
 */

/** Entries whose path has a part starting with "." are work in progress (a copy, a temp file): never served, never fingerprinted. */
export const isDotPath = (rel: string): boolean => rel.split('/').some((p) => p.startsWith('.'));

/**
 * A content fingerprint of a walk: every entry's path, kind, size, mtime, ctime and inode. A
 * write always changes ctime (which a user cannot set back), so "same fingerprint" means no
 * byte of these files was written since, without reading them.
 */
export function fingerprintOf(walk: WalkResult, extra = ''): string {
  const h = createHash('sha256');
  h.update(extra);
  for (const e of walk.entries) h.update(`${e.rel}\0${e.kind}\0${e.size}\0${e.mtimeNs}\0${e.ctimeNs}\0${e.ino}\n`);
  for (const p of walk.problems) h.update(`!${p.rel}\0${p.code}\n`);
  return h.digest('hex').slice(0, 16);
}

/** Walk a folder (dot entries left out, plus what `options.skip` leaves out) and fingerprint it. */
export async function folderFingerprint(dir: string, options: WalkOptions = {}): Promise<{ walk: WalkResult; fingerprint: string }> {
  const extra = options.skip;
  const walk = await walkTree(dir, { ...options, skip: extra ? (rel) => isDotPath(rel) || extra(rel) : isDotPath });
  return { walk, fingerprint: fingerprintOf(walk) };
}

/**
 * Size, mtime and inode of the named files in dir (a missing file counts as "-"): equal stamps
 * mean none of them was replaced or rewritten, without opening any.
 */
export async function fileStamp(dir: string, rels: readonly string[]): Promise<string> {
  const parts: string[] = [];
  for (const rel of rels) {
    const s = await stat(join(dir, rel)).catch(() => null);
    parts.push(s ? `${rel}:${s.size}:${s.mtimeMs}:${s.ino}` : `${rel}:-`);
  }
  return parts.join('|');
}

/** sha256 of a string (as UTF-8) or of bytes, hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

const sourceTags = new Map<string, string>();
/**
 * A short hash of the source files `names` (without extension) beside the module at `moduleUrl`:
 * the compiled .js files, or the .ts ones when the sources run directly (tests). A missing file
 * counts by its name. Part of a cache's key, so entries written by other code are never reused.
 */
export function sourceTag(moduleUrl: string, names: readonly string[]): string {
  const here = fileURLToPath(moduleUrl);
  const memo = `${here}\0${names.join('\0')}`;
  const known = sourceTags.get(memo);
  if (known) return known;
  const ext = here.endsWith('.ts') ? '.ts' : '.js';
  const h = createHash('sha256');
  for (const name of names) {
    try {
      h.update(readFileSync(join(dirname(here), name + ext)));
    } catch {
      h.update(`missing ${name}`);
    }
  }
  const tag = h.digest('hex').slice(0, 16);
  sourceTags.set(memo, tag);
  return tag;
}

/** sha256 of a file, hex, streamed in READ_STEP reads (each hash step is short). For files the service wrote or already checked (a snapshot, its own ingest output, a walked model folder). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: READ_STEP })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of an untrusted regular file inside root (special files and links out refused; cancellable). */
export async function hashFileSafe(path: string, root: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const { fh } = await openRegularFile(path, root);
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(READ_STEP);
    let size = 0;
    for (;;) {
      throwIfAborted(signal);
      const { bytesRead } = await fh.read(buf, 0, READ_STEP, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    await fh.close();
  }
}
