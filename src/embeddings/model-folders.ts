import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';

/** The model the set-up generates (and the fallback when several folders exist). */
export const DEFAULT_MODEL_NAME = 'glove-sif-100d';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Model folders under modelsDir: sub-folders with a config.json (dot-folders are work in progress). */
export async function listModelFolders(modelsDir: string): Promise<string[]> {
  const entries = await readdir(modelsDir, { withFileTypes: true }).catch((cause: unknown) => {
    throw new RagError('RAG_MODEL_NOT_FOUND', `the models folder ${modelsDir} does not exist or is unreadable`, { cause });
  });
  return entries
    .filter((e) => (e.isDirectory() || e.isSymbolicLink()) && !e.name.startsWith('.') && MODEL_NAME.test(e.name))
    .map((e) => e.name)
    .filter((name) => existsSync(join(modelsDir, name, 'config.json')))
    .sort();
}

/**
 * Which model folder to serve: the configured name, else the one the store was built with,
 * else the only one, else the default generated model.
 */
export async function chooseModelName(modelsDir: string, configured: string | undefined, storeModel?: string): Promise<string> {
  if (configured) {
    if (!MODEL_NAME.test(configured)) throw new RagError('RAG_MODEL_NOT_FOUND', `MODEL_NAME "${configured}" is not a valid folder name`);
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
