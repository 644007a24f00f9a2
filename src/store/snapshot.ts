import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { copyFileSafe, freeBytes, hashFileSafe, runtimeWriteError, throwIfAborted } from '../fs/safe-fs.js';
import type { StoreSpec } from './layout.js';
import { MANIFEST_FILE } from './manifest.js';
import { pidAlive } from '../process-alive.js';

/**
 * A private copy of a store version in RUNTIME_DIR/stores: the only folder a Chroma child ever
 * opens for writing. Made of real files (a linked version folder is copied, not linked), only
 * the files the manifest lists (or every file of a flat store), sparse files kept sparse, and
 * checked against the manifest's sha256 from the bytes actually copied. A partial snapshot copies
 * only some files and checks the others where they are (SnapshotOptions.copy).
 */
let snapshotCounter = 0;

/** What copying and checking a store's files reads of its spec. */
type SnapshotSource = Pick<StoreSpec, 'dir' | 'version' | 'manifest' | 'files'>;

export function snapshotRoot(runtimeDir: string): string {
  return join(runtimeDir, 'stores');
}

export interface SnapshotOptions {
  runtimeDir: string;
  signal?: AbortSignal;
  /** The store's fingerprint now: a store without a manifest must not change while it is copied. */
  recheck: () => Promise<string>;
  /**
   * Copy only the files this accepts (paths relative to the version); the others are checked
   * where they are (hashed against the manifest, not copied): a partial snapshot, for a version
   * whose serving-index.bin is all a load reads. completeSnapshot() copies the rest when a load
   * needs Chroma after all. Only for a store with a manifest (one without copies every file).
   */
  copy?: (rel: string) => boolean;
}

export async function snapshotStore(spec: StoreSpec, options: SnapshotOptions): Promise<string> {
  const root = snapshotRoot(options.runtimeDir);
  const dir = join(root, `p${process.pid}-${++snapshotCounter}-${spec.version}`);
  try {
    await mkdir(root, { recursive: true });
    await mkdir(dir, { mode: 0o700 });
  } catch (err) {
    // Recursive mkdir on a read-only mount reports ENOENT; access() names the real cause (EROFS).
    const why = await access(options.runtimeDir, constants.W_OK).then(() => err, (e: unknown) => e);
    throw runtimeWriteError(why, options.runtimeDir);
  }
  try {
    const copy = spec.manifest ? options.copy : undefined;
    await copyVerified(spec, dir, options, (rel) => copy?.(rel) ?? true);
    if (!spec.manifest) {
      // No manifest to check against: the files must not have changed while we copied them.
      if ((await options.recheck().catch(() => 'changed')) !== spec.fingerprint) {
        throw new RagError('RAG_STORE_WRITE_IN_PROGRESS', `the store at ${spec.dir} changed while it was being copied (a copy or a writer is still at work); it is retried when the files settle`);
      }
    }
    return dir;
  } catch (err) {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Copy into a partial snapshot (snapshotStore's `copy`) the files it does not hold yet, checked
 * against the manifest again (they may have changed since the first check). The snapshot is then
 * whole, as if it had been copied at once; on failure it is left as it was (its owner deletes it).
 */
export async function completeSnapshot(spec: SnapshotSource, dir: string, options: Pick<SnapshotOptions, 'runtimeDir' | 'signal'>): Promise<void> {
  const present = new Set<string>();
  for (const f of spec.files) if (await access(join(dir, f.rel)).then(() => true, () => false)) present.add(f.rel);
  await copyVerified(spec, dir, options, (rel) => !present.has(rel), present);
}

/**
 * Copy (or, where `copy` says no, hash in place) every file of the store, then check each against
 * the manifest. `skip`: files already in the snapshot (neither copied nor checked again).
 */
async function copyVerified(spec: SnapshotSource, dir: string, options: Pick<SnapshotOptions, 'runtimeDir' | 'signal'>, copy: (rel: string) => boolean, skip = new Set<string>()): Promise<void> {
  const root = snapshotRoot(options.runtimeDir);
  const need = spec.files.filter((f) => !skip.has(f.rel) && copy(f.rel)).reduce((n, f) => n + Math.min(f.size, f.blocks * 512), 0);
  const free = await freeBytes(root);
  if (free !== null && free < need) {
    throw new RagError('RAG_RUNTIME_NO_SPACE', `RUNTIME_DIR ${options.runtimeDir} has ${free} bytes free, store ${spec.version} needs ${need}; free space or point RUNTIME_DIR at a bigger disk`);
  }
  const seen = new Map<string, { sha256: string; size: number }>();
  for (const f of spec.files) {
    if (skip.has(f.rel)) continue;
    throwIfAborted(options.signal);
    const signal = options.signal ? { signal: options.signal } : {};
    try {
      seen.set(f.rel, copy(f.rel) ? await copyFileSafe(join(spec.dir, f.rel), spec.dir, join(dir, f.rel), { runtimeDir: options.runtimeDir, ...signal }) : await hashFileSafe(join(spec.dir, f.rel), spec.dir, signal));
    } catch (err) {
      if (err instanceof RagError && err.code === 'RAG_FS_NOT_FOUND') {
        throw new RagError('RAG_STORE_FILE_MISSING', `store file ${f.rel} of ${spec.version} disappeared while it was copied`, { cause: err, details: { file: f.rel } });
      }
      throw err;
    }
  }
  if (!spec.manifest) return;
  for (const [rel, want] of Object.entries(spec.manifest.files)) {
    if (skip.has(rel)) continue;
    const got = seen.get(rel);
    if (!got) throw new RagError('RAG_STORE_FILE_MISSING', `store file ${rel} listed in ${MANIFEST_FILE} is missing`, { details: { file: rel } });
    if (got.size !== want.size) {
      throw new RagError('RAG_STORE_CHECKSUM_MISMATCH', `store file ${rel} has ${got.size} bytes, ${MANIFEST_FILE} says ${want.size}`, { details: { file: rel } });
    }
    if (got.sha256 !== want.sha256) {
      throw new RagError('RAG_STORE_CHECKSUM_MISMATCH', `store file ${rel} does not match its sha256 in ${MANIFEST_FILE}`, {
        details: { file: rel, expected: want.sha256, actual: got.sha256 },
      });
    }
  }
}

/** Processes whose command line names this folder (orphaned Chroma children of a dead service). */
async function processesUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    const args = cmd.split('\0');
    const i = args.indexOf('--path');
    if (i >= 0 && (args[i + 1] === dir || args[i + 1]?.startsWith(`${dir}/`))) pids.push(Number(name));
  }
  return pids;
}

/**
 * Remove snapshots left behind by service processes that no longer run: first kill any orphan
 * Chroma child still serving one (it would write into the folder while we delete it).
 */
export async function cleanStaleSnapshots(runtimeDir: string): Promise<{ removed: number; killed: number[] }> {
  const root = snapshotRoot(runtimeDir);
  let removed = 0;
  const killed: number[] = [];
  for (const name of await readdir(root).catch(() => [] as string[])) {
    const pid = Number(/^p(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid || pidAlive(pid)) continue;
    const dir = join(root, name);
    for (const orphan of await processesUsing(dir)) {
      try {
        process.kill(orphan, 'SIGKILL');
        killed.push(orphan);
      } catch {
        /* gone already */
      }
    }
    if (killed.length) await waitGone(killed, 2000);
    await rm(dir, { recursive: true, force: true });
    removed++;
  }
  return { removed, killed };
}

async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && pids.some(pidAlive)) await new Promise((r) => setTimeout(r, 20));
}

/** For tests: the pids of processes that serve a folder under dir. */
export async function pidsUsing(dir: string): Promise<number[]> {
  return processesUsing(dir);
}
