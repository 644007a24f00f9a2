import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RagError } from '../errors.js';
import { readSmallFileSafe } from '../fs/safe-fs.js';

/** The model the set-up generates (and the fallback when several folders exist). */
export const DEFAULT_MODEL_NAME = 'glove-sif-100d';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A Hugging Face hub id, `org/name` (each part a valid folder name). */
const HUB_ID = /^([A-Za-z0-9][A-Za-z0-9._-]{0,95})\/([A-Za-z0-9][A-Za-z0-9._-]{0,95})$/;
/** A revision named by refs/main (a commit hash on the hub; any plain name is accepted, never a path). */
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HUB_REPO = /^models--([A-Za-z0-9][A-Za-z0-9._-]{0,95})--([A-Za-z0-9][A-Za-z0-9._-]{0,95})$/;

/** `org/name` -> the hub cache folder `models--org--name`. */
export function hubRepoFolder(id: string): string {
  const m = HUB_ID.exec(id);
  if (!m) throw new RagError('RAG_MODEL_NOT_FOUND', `MODEL_NAME "${id}" is not a Hugging Face id (org/name)`);
  return `models--${m[1]}--${m[2]}`;
}

/** The hub id (`org/name`) of a hub cache snapshot folder (`.../models--org--name/snapshots/<rev>`), else null. */
export function hubModelId(dir: string): string | null {
  if (basename(dirname(dir)) !== 'snapshots') return null;
  const m = HUB_REPO.exec(basename(dirname(dirname(dir))));
  return m ? `${m[1]}/${m[2]}` : null;
}

/**
 * The snapshot a hub cache repo serves, offline, like huggingface_hub does: the revision named in
 * `refs/main`, else the newest complete snapshot. The folder must hold a config.json.
 */
export async function resolveHubSnapshot(modelsDir: string, id: string): Promise<string> {
  const repo = join(modelsDir, hubRepoFolder(id));
  if (!existsSync(repo)) throw new RagError('RAG_MODEL_NOT_FOUND', `model ${id}: no ${hubRepoFolder(id)} in the hub cache ${modelsDir}`);
  let rev: string | null = null;
  // Read through src/fs: refs/main may be anything a user dropped there (a FIFO, a link out of the cache).
  const ref = existsSync(join(repo, 'refs', 'main')) ? await readSmallFileSafe(join(repo, 'refs', 'main'), modelsDir, 4096) : null;
  if (ref !== null) {
    rev = ref.trim();
    if (!REVISION.test(rev)) throw new RagError('RAG_MODEL_NOT_FOUND', `model ${id}: refs/main holds "${rev.slice(0, 60)}", not a revision name`);
  } else {
    // No refs/main (a cache copied by hand): the newest complete snapshot.
    const names = (await readdir(join(repo, 'snapshots')).catch(() => [] as string[])).filter((n) => REVISION.test(n) && existsSync(join(repo, 'snapshots', n, 'config.json')));
    const snaps = await Promise.all(names.map(async (n) => ({ n, t: (await stat(join(repo, 'snapshots', n)).catch(() => null))?.mtimeMs ?? 0 })));
    snaps.sort((a, b) => b.t - a.t || (a.n < b.n ? 1 : -1));
    if (snaps.length === 0) throw new RagError('RAG_MODEL_NOT_FOUND', `model ${id}: no refs/main and no complete snapshot (with config.json) in ${repo}`);
    rev = snaps[0]!.n;
  }
  const dir = join(repo, 'snapshots', rev);
  if (!existsSync(join(dir, 'config.json'))) {
    throw new RagError('RAG_MODEL_NOT_FOUND', `model ${id}: refs/main names ${rev}, but snapshots/${rev} has no config.json (not downloaded, or still being written)`);
  }
  return dir;
}

/** The folder to load for a model name: `org/name` in a hub cache, else a plain folder under modelsDir. */
export async function resolveModelDir(modelsDir: string, name: string): Promise<string> {
  return name.includes('/') ? resolveHubSnapshot(modelsDir, name) : join(modelsDir, name);
}

/**
 * Models under modelsDir: sub-folders with a config.json (dot-folders are work in progress), and
 * hub cache repos (`models--org--name`, listed as `org/name`) with a complete snapshot.
 */
export async function listModelFolders(modelsDir: string): Promise<string[]> {
  const entries = await readdir(modelsDir, { withFileTypes: true }).catch((cause: unknown) => {
    throw new RagError('RAG_MODEL_NOT_FOUND', `the models folder ${modelsDir} does not exist or is unreadable`, { cause });
  });
  const dirs = entries.filter((e) => (e.isDirectory() || e.isSymbolicLink()) && !e.name.startsWith('.'));
  const plain = dirs.filter((e) => MODEL_NAME.test(e.name) && existsSync(join(modelsDir, e.name, 'config.json'))).map((e) => e.name);
  const hub: string[] = [];
  for (const e of dirs) {
    const m = HUB_REPO.exec(e.name);
    if (!m) continue;
    const id = `${m[1]}/${m[2]}`;
    if (await resolveHubSnapshot(modelsDir, id).then(() => true, () => false)) hub.push(id);
  }
  return [...plain.filter((n) => !HUB_REPO.test(n)), ...hub].sort();
}

/**
 * Which model folder to serve: the configured name, else the one the store was built with,
 * else the only one, else the default generated model.
 */
export async function chooseModelName(modelsDir: string, configured: string | undefined, storeModel?: string): Promise<string> {
  if (configured) {
    if (!MODEL_NAME.test(configured) && !HUB_ID.test(configured)) {
      throw new RagError('RAG_MODEL_NOT_FOUND', `MODEL_NAME "${configured}" is not a valid folder name or Hugging Face id (org/name)`);
    }
    return configured;
  }
  const names = await listModelFolders(modelsDir);
  if (storeModel && names.includes(storeModel)) return storeModel;
  if (names.length === 1) return names[0]!;
  if (names.includes(DEFAULT_MODEL_NAME)) return DEFAULT_MODEL_NAME;
  if (names.length === 0) {
    throw new RagError('RAG_MODEL_NOT_FOUND', `no model folder (with config.json) in ${modelsDir}; run \`npm run setup\` or drop a transformers.js model folder there`);
  }
  throw new RagError('RAG_MODEL_NOT_FOUND', `several models in ${modelsDir} (${names.join(', ')}); set MODEL_NAME`);
}
