import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { listFiles, readManifest, type StoreManifest } from './manifest.js';

/**
 * Layouts ./vectorstore can have:
 * - versioned (what the ingest CLI publishes): `<version>/` folders with a manifest.json, and a
 *   `CURRENT` file naming the served one, replaced by rename; without CURRENT the newest
 *   complete version (by manifest createdAt) is served.
 * - flat: a Chroma persist folder at the top (`chroma.sqlite3` + segment folders), e.g. from
 *   Python LangChain's `Chroma(persist_directory=...)` or copied in place with cp/rsync.
 * Folders starting with "." are work in progress and never served.
 */
export const CURRENT_FILE = 'CURRENT';
export const SQLITE_FILE = 'chroma.sqlite3';

export interface StoreCandidate {
  kind: 'versioned' | 'flat';
  /** Folder holding chroma.sqlite3 (the version folder, or the vectorstore root). */
  dir: string;
  version: string;
  manifest: StoreManifest | null;
}

const VERSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isValidVersionName(name: string): boolean {
  return VERSION_NAME.test(name) && !name.includes('..');
}

/** Size+mtime fingerprint of a folder's files: a cheap "did it change" check. */
export async function fingerprint(dir: string, skipDirs: (name: string) => boolean = () => false): Promise<string> {
  const hash = createHash('sha256');
  for (const rel of await listFiles(dir)) {
    const top = rel.split('/')[0]!;
    if (rel.includes('/') && skipDirs(top)) continue;
    const s = await stat(join(dir, rel)).catch(() => null);
    if (s) hash.update(`${rel}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return hash.digest('hex').slice(0, 12);
}

async function versionFolders(root: string): Promise<Array<{ name: string; manifest: StoreManifest }>> {
  const out: Array<{ name: string; manifest: StoreManifest }> = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name.startsWith('.') || !isValidVersionName(e.name)) continue;
    const dir = join(root, e.name);
    if (!existsSync(join(dir, SQLITE_FILE))) continue;
    try {
      const manifest = await readManifest(dir);
      if (manifest) out.push({ name: e.name, manifest });
    } catch {
      // an invalid manifest makes the folder incomplete: not a candidate for "newest"
    }
  }
  return out;
}

/** Which store the folder says should be served now. */
export async function resolveStoreCandidate(root: string): Promise<StoreCandidate> {
  let rootStat;
  try {
    rootStat = await stat(root);
  } catch (cause) {
    throw new RagError('RAG_STORE_NOT_FOUND', `the vector store folder ${root} does not exist or is unreadable`, { cause });
  }
  if (!rootStat.isDirectory()) throw new RagError('RAG_STORE_NOT_FOUND', `${root} is not a folder`);

  const pointer = join(root, CURRENT_FILE);
  if (existsSync(pointer)) {
    const name = (await readFile(pointer, 'utf8')).trim();
    if (!isValidVersionName(name)) {
      throw new RagError('RAG_STORE_NOT_FOUND', `${CURRENT_FILE} names "${name.slice(0, 80)}", which is not a valid version folder name`);
    }
    const dir = join(root, name);
    if (!existsSync(dir)) throw new RagError('RAG_STORE_NOT_FOUND', `${CURRENT_FILE} points to version "${name}", which does not exist`);
    return { kind: 'versioned', dir, version: name, manifest: await readManifest(dir) };
  }
  const versions = await versionFolders(root);
  if (versions.length > 0) {
    versions.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || a.name.localeCompare(b.name));
    const newest = versions[versions.length - 1]!;
    return { kind: 'versioned', dir: join(root, newest.name), version: newest.name, manifest: newest.manifest };
  }
  if (existsSync(join(root, SQLITE_FILE))) {
    const manifest = await readManifest(root);
    const version = manifest?.version ?? `inplace-${await fingerprint(root, (top) => top.startsWith('.'))}`;
    return { kind: 'flat', dir: root, version, manifest };
  }
  throw new RagError('RAG_STORE_NOT_FOUND', `no store in ${root}: expected a version folder with ${SQLITE_FILE} and manifest.json, or ${SQLITE_FILE} at the top`);
}
