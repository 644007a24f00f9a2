import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { fingerprintOf, isDotPath } from '../fs/fingerprint.js';
import { problemError, readSmallFileSafe, walkTree, type TreeEntry } from '../fs/safe-fs.js';
import { MANIFEST_FILE, parseManifest, type StoreManifest } from './manifest.js';

/**
 * Layouts ./vectorstore can have:
 * - versioned (what the ingest CLI publishes): `<version>/` folders with a manifest.json, and a
 *   `CURRENT` file naming the served one, replaced by rename; without CURRENT the newest
 *   complete version (by manifest createdAt) is served, or the only store folder there is.
 * - flat: a Chroma persist folder at the top (`chroma.sqlite3` + segment folders), e.g. from
 *   Python LangChain's `Chroma(persist_directory=...)` or copied in place with cp/rsync.
 * Both at once is ambiguous and rejected with a message saying how to fix it. Entries starting
 * with "." are work in progress and never served. Everything is read through src/fs.
 */
export const CURRENT_FILE = 'CURRENT';
export const SQLITE_FILE = 'chroma.sqlite3';

const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isValidVersionName(name: string): boolean {
  return VERSION_NAME.test(name) && !name.includes('..');
}

/** A store resolved from the folders: what to snapshot, with a content fingerprint. */
export interface StoreSpec {
  kind: 'versioned' | 'flat';
  /** Folder holding chroma.sqlite3 (a version folder, or the vectorstore root). */
  dir: string;
  version: string;
  manifest: StoreManifest | null;
  /** The regular files a snapshot copies (relative to dir): manifest-listed, or every file of a flat store. */
  files: TreeEntry[];
  /** Files in a version folder that its manifest does not list: never copied, shown in the status. */
  unlisted: string[];
  /** Content fingerprint of every file that affects serving. */
  fingerprint: string;
}

/** Kept for callers of the old name (eval): a resolved store. */
export type StoreCandidate = StoreSpec;

/** Store files in ./vectorstore that belong to an open SQLite writer (a live writer process). */
export const WRITER_FILES = [`${SQLITE_FILE}-journal`, `${SQLITE_FILE}-wal`];
export const ACCEPTANCE_FILE = 'acceptance.json';

/** The store cannot be served yet because a writer is still at work (not a rejection of content). */
export class WriterActiveError extends RagError {
  constructor(message: string, readonly files: string[]) {
    super('RAG_STORE_WRITE_IN_PROGRESS', message, { details: { files } });
  }
}

async function kindOf(path: string): Promise<'missing' | 'file' | 'dir' | 'link' | 'special'> {
  try {
    const s = await lstat(path);
    if (s.isSymbolicLink()) return 'link';
    if (s.isFile()) return 'file';
    if (s.isDirectory()) return 'dir';
    return 'special';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new RagError('RAG_FS_UNREADABLE', `${path} cannot be read (${(err as NodeJS.ErrnoException).code}); fix its permissions`, { cause: err });
  }
}

/** A folder or a link to one inside the root that holds chroma.sqlite3. */
async function isStoreFolder(root: string, name: string): Promise<boolean> {
  const k = await kindOf(join(root, name));
  if (k !== 'dir' && k !== 'link') return false;
  const sq = await kindOf(join(root, name, SQLITE_FILE)).catch(() => 'missing' as const);
  return sq !== 'missing';
}

async function readManifestSafe(dir: string, root: string): Promise<StoreManifest | null> {
  const k = await kindOf(join(dir, MANIFEST_FILE));
  if (k === 'missing') return null;
  return parseManifest(await readSmallFileSafe(join(dir, MANIFEST_FILE), root), dir);
}

async function writerFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const f of WRITER_FILES) if ((await kindOf(join(dir, f)).catch(() => 'missing')) !== 'missing') found.push(f);
  return found;
}

/** Walk one store folder and describe what a snapshot would copy. */
export async function describeStore(root: string, dir: string, kind: StoreSpec['kind'], version: string | null, signal?: AbortSignal): Promise<StoreSpec> {
  const writers = await writerFiles(dir);
  if (writers.length) {
    throw new WriterActiveError(
      `a writer still has the store at ${dir} open (${writers.join(', ')} beside ${SQLITE_FILE}); it is served once the writer closes it ` +
        '(close the Chroma client, or build the store elsewhere and publish it as a version folder)',
      writers,
    );
  }
  const manifest = await readManifestSafe(dir, root);
  const isFlatRoot = kind === 'flat' && dir === root;
  const walk = await walkTree(dir, {
    root,
    ...(signal ? { signal } : {}),
    // A flat store at the root: leave out the pointer file, and version-style siblings are an
    // ambiguity handled by the caller.
    skip: (rel) => isDotPath(rel) || (isFlatRoot && (rel === CURRENT_FILE || rel === 'README.md')),
  });
  let files: TreeEntry[];
  let unlisted: string[] = [];
  let problems = walk.problems;
  if (manifest) {
    const listed = new Set([...Object.keys(manifest.files), MANIFEST_FILE]);
    files = walk.entries.filter((e) => e.kind === 'file' && listed.has(e.rel));
    unlisted = walk.entries.filter((e) => e.kind === 'file' && !listed.has(e.rel)).map((e) => e.rel);
    // A problem only matters for a file we would read (a FIFO nobody lists is ignored but shown).
    problems = walk.problems.filter((p) => listed.has(p.rel) || !walk.entries.length);
    const ignoredProblems = walk.problems.filter((p) => !problems.includes(p));
    unlisted.push(...ignoredProblems.map((p) => `${p.rel} (${p.code})`));
  } else {
    files = walk.entries.filter((e) => e.kind === 'file');
  }
  const err = problemError(problems, `store ${version ?? dir}`);
  if (err) throw err;
  if (!files.some((f) => f.rel === SQLITE_FILE)) {
    throw new RagError('RAG_STORE_FILE_MISSING', `store ${version ?? dir} has no ${SQLITE_FILE}`, { details: { file: SQLITE_FILE } });
  }
  const fingerprint = fingerprintOf({ entries: files, problems: [] }, kind);
  return { kind, dir, version: version ?? manifest?.version ?? `inplace-${fingerprint.slice(0, 12)}`, manifest, files, unlisted, fingerprint };
}

/** The store folder's fingerprint now (a flat store must not change while it is copied). */
export async function storeFingerprintNow(spec: StoreSpec): Promise<string> {
  const root = spec.kind === 'flat' ? spec.dir : join(spec.dir, '..');
  const again = await describeStore(root, spec.dir, spec.kind, spec.kind === 'flat' ? null : spec.version);
  return again.fingerprint;
}

/**
 * Which store the folder says should be served now; ambiguous layouts are rejected with how to fix
 * them. A folder that disappears while it is read (`rm -rf` of the store under way) is
 * RAG_STORE_NOT_FOUND, as it is once gone, whatever file the read was at.
 */
export async function resolveStore(root: string, signal?: AbortSignal): Promise<StoreSpec> {
  try {
    return await resolveStoreOnce(root, signal);
  } catch (err) {
    if (err instanceof RagError && err.code === 'RAG_FS_NOT_FOUND' && (await kindOf(root)) === 'missing') {
      throw new RagError('RAG_STORE_NOT_FOUND', `the vector store folder ${root} does not exist (it was removed while it was read)`, { cause: err });
    }
    throw err;
  }
}

async function resolveStoreOnce(root: string, signal?: AbortSignal): Promise<StoreSpec> {
  const rootKind = await kindOf(root);
  if (rootKind === 'missing') throw new RagError('RAG_STORE_NOT_FOUND', `the vector store folder ${root} does not exist`);
  if (rootKind !== 'dir') throw new RagError('RAG_STORE_NOT_FOUND', `${root} is not a folder`);
  const top = await walkTree(root, { skip: (rel) => isDotPath(rel) || rel.includes('/'), ...(signal ? { signal } : {}) });
  const names = top.entries.map((e) => e.rel);
  const hasFlat = (await kindOf(join(root, SQLITE_FILE))) !== 'missing';
  const currentKind = await kindOf(join(root, CURRENT_FILE));
  const storeFolders: string[] = [];
  for (const e of top.entries) if (e.kind === 'dir' && isValidVersionName(e.rel) && (await isStoreFolder(root, e.rel))) storeFolders.push(e.rel);

  if (hasFlat && currentKind !== 'missing') {
    throw new RagError(
      'RAG_STORE_LAYOUT_AMBIGUOUS',
      `${root} holds a flat store (${SQLITE_FILE} at the top) and a ${CURRENT_FILE} file: it is not clear which to serve. ` +
        `To serve the copied flat store, delete ${CURRENT_FILE} (and the version folders); to publish it as a version, ` +
        `move its files into a new folder, e.g. ${root}/my-store/, and write that name into ${CURRENT_FILE}`,
    );
  }
  if (hasFlat && storeFolders.length) {
    throw new RagError(
      'RAG_STORE_LAYOUT_AMBIGUOUS',
      `${root} holds a flat store (${SQLITE_FILE} at the top) and store folder${storeFolders.length > 1 ? 's' : ''} ${storeFolders.join(', ')}: ` +
        `it is not clear which to serve. Either move the flat files into their own folder and write its name into ${CURRENT_FILE}, ` +
        `or remove ${storeFolders.join(', ')}`,
    );
  }
  if (currentKind !== 'missing') {
    if (currentKind === 'special' || currentKind === 'dir') {
      throw new RagError('RAG_FS_SPECIAL_FILE', `${CURRENT_FILE} is not a regular file; write the version name into it (then rename it into place)`);
    }
    const name = (await readSmallFileSafe(join(root, CURRENT_FILE), root, 4096)).trim();
    if (!isValidVersionName(name)) {
      throw new RagError('RAG_STORE_NOT_FOUND', `${CURRENT_FILE} names "${name.slice(0, 80)}", which is not a valid version folder name`);
    }
    // Looked up again rather than in the walk above: CURRENT may have been renamed to name a
    // folder published after the walk listed the root.
    if (!names.includes(name)) {
      const gone = top.problems.find((p) => p.rel === name);
      if (gone) throw problemError([gone], `version ${name}`)!;
      const k = await kindOf(join(root, name));
      if (k === 'link') {
        const again = await walkTree(root, { skip: (rel) => rel !== name, ...(signal ? { signal } : {}) });
        const bad = problemError(again.problems, `version ${name}`);
        if (bad) throw bad;
      } else if (k !== 'dir') {
        throw new RagError('RAG_STORE_NOT_FOUND', `${CURRENT_FILE} points to version "${name}", which does not exist`);
      }
    }
    return describeStore(root, join(root, name), 'versioned', name, signal);
  }
  if (storeFolders.length) {
    const withManifest: Array<{ name: string; manifest: StoreManifest }> = [];
    const without: string[] = [];
    for (const name of storeFolders) {
      const m = await readManifestSafe(join(root, name), root).catch(() => null);
      if (m) withManifest.push({ name, manifest: m });
      else without.push(name);
    }
    if (storeFolders.length === 1) return describeStore(root, join(root, storeFolders[0]!), 'versioned', storeFolders[0]!, signal);
    if (without.length) {
      throw new RagError(
        'RAG_STORE_LAYOUT_AMBIGUOUS',
        `${root} holds ${storeFolders.length} store folders (${storeFolders.join(', ')}) and ${without.join(', ')} ${without.length > 1 ? 'have' : 'has'} no valid ${MANIFEST_FILE}, ` +
          `so "newest" is unknown: write the name of the one to serve into ${CURRENT_FILE}`,
      );
    }
    withManifest.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || a.name.localeCompare(b.name));
    const newest = withManifest[withManifest.length - 1]!;
    return describeStore(root, join(root, newest.name), 'versioned', newest.name, signal);
  }
  if (hasFlat) return describeStore(root, root, 'flat', null, signal);
  const bad = problemError(top.problems, `${root}`);
  if (bad) throw bad;
  throw new RagError('RAG_STORE_NOT_FOUND', `no store in ${root}: expected a version folder with ${SQLITE_FILE} and ${MANIFEST_FILE}, or ${SQLITE_FILE} at the top`);
}

/** Old name of resolveStore (eval/run.ts). */
export const resolveStoreCandidate = (root: string): Promise<StoreSpec> => resolveStore(root);
