import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config.js';
import { RagError } from '../errors.js';
import { chooseModelName, resolveModelDir } from '../embeddings/model-folders.js';
import { folderFingerprint } from '../fs/fingerprint.js';
import { problemError } from '../fs/safe-fs.js';
import { describeStore, resolveStore, SQLITE_FILE, type StoreSpec } from '../store/layout.js';
import { type PointerRecord, SharedRegistry, type VersionInfo } from '../store/shared-registry.js';

export type { StoreSpec };

/**
 * The source (TF Serving's Source): turns the folders into an *aspired spec*, the store version
 * and model folder that should serve now, each with a content fingerprint over every file that
 * affects serving. It only lstat-s and reads small files through src/fs; it never builds
 * anything. Two specs with the same key are the same bytes.
 */

export interface ModelSpec {
  name: string;
  dir: string;
  fingerprint: string;
  files: number;
}

export interface AspiredSpec {
  /** null in CHROMA_URL mode (the remote server is not ours to snapshot). */
  store: StoreSpec | null;
  /** Shared-Chroma mode (CHROMA_URL + STORE_NAME): the version collection the pointer names. */
  remote?: {
    name: string;
    version: string;
    collection: string;
    /** sha256 of the version's acceptance record, from the version's facts; null: published without questions. */
    acceptanceSha256?: string | null;
  } | null;
  model: ModelSpec;
  /** Identity of the bytes: equal keys are the same content. */
  key: string;
  resolvedAt: string;
}

/** The model folder to serve, with a fingerprint over every one of its files. */
export async function resolveModel(config: Pick<Config, 'modelsDir' | 'modelName'>, storeModel?: string, signal?: AbortSignal): Promise<ModelSpec> {
  const name = await chooseModelName(config.modelsDir, config.modelName, storeModel);
  // A plain folder under MODELS_DIR, or a Hugging Face hub id resolved to its snapshot (refs/main).
  const dir = await resolveModelDir(config.modelsDir, name);
  let walk, fingerprint;
  try {
    ({ walk, fingerprint } = await folderFingerprint(dir, { root: config.modelsDir, ...(signal ? { signal } : {}) }));
  } catch (err) {
    if (err instanceof RagError && err.code === 'RAG_FS_NOT_FOUND') throw new RagError('RAG_MODEL_NOT_FOUND', `model folder ${dir} does not exist`, { cause: err });
    throw err;
  }
  const bad = problemError(walk.problems, `model ${name}`);
  if (bad) throw bad;
  return { name, dir, fingerprint, files: walk.entries.filter((e) => e.kind === 'file').length };
}

/**
 * One registry client per Chroma URL, shared by every resolve (and the pointer watcher): opening
 * one is a round trip (get-or-create of the registry collection), and a resolve runs on every
 * pointer move. A failed open is not kept, so the next resolve tries again with the same error.
 */
const registries = new Map<string, Promise<SharedRegistry>>();

export function sharedRegistryFor(url: string): Promise<SharedRegistry> {
  let opening = registries.get(url);
  if (!opening) {
    const p = SharedRegistry.open(url);
    registries.set(url, p);
    p.catch(() => forgetSharedRegistry(url, p));
    opening = p;
  }
  return opening;
}

/** Drop a cached registry (only if it is still the one given, when given): the next use reopens it. */
export function forgetSharedRegistry(url: string, which?: Promise<SharedRegistry>): void {
  if (!which || registries.get(url) === which) registries.delete(url);
}

/** Resolve the folders into the aspired spec (store + model), or throw why not. */
export async function resolveAspired(config: Pick<Config, 'modelsDir' | 'modelName' | 'vectorstoreDir' | 'chromaUrl' | 'storeName'>, signal?: AbortSignal): Promise<AspiredSpec> {
  if (config.chromaUrl && config.storeName) {
    // Shared mode: the pointer names the version; its collection is never written once complete.
    const opening = sharedRegistryFor(config.chromaUrl);
    const registry = await opening;
    let pointer: PointerRecord | null;
    let info: VersionInfo | null;
    try {
      pointer = await registry.readPointer(config.storeName);
      info = pointer ? await registry.versionInfo(config.storeName, pointer.version) : null;
    } catch (err) {
      // The server restarted on other data, or the registry collection was deleted: its cached
      // handle may be stale, so the next resolve opens it again. The error is the registry's own.
      forgetSharedRegistry(config.chromaUrl, opening);
      throw err;
    }
    if (!pointer) throw new RagError('RAG_SHARED_NO_POINTER', `no version of "${config.storeName}" is published on the shared Chroma yet (npm run ingest -- <docs> --chroma-url URL --name ${config.storeName})`);
    const model = await resolveModel(config, info?.modelId?.split('@')[0] ?? undefined, signal);
    const acceptanceSha256 = info?.acceptanceSha256 ?? null;
    const remote = { name: config.storeName, version: pointer.version, collection: pointer.collection, acceptanceSha256 };
    const acc = acceptanceSha256 ? `#acceptance:${acceptanceSha256.slice(0, 16)}` : '';
    return { store: null, remote, model, key: `shared:${pointer.collection}${acc}|${model.name}:${model.fingerprint}`, resolvedAt: new Date().toISOString() };
  }
  const store = config.chromaUrl ? null : await resolveStore(config.vectorstoreDir, signal);
  const model = await resolveModel(config, store?.manifest?.embedding.model, signal);
  return { store, model, key: `${store ? `${store.version}:${store.fingerprint}` : 'remote'}|${model.name}:${model.fingerprint}`, resolvedAt: new Date().toISOString() };
}

/** A rollback target re-read from disk: its folder must still exist, and a flat store must be unchanged. */
export async function resolveAgain(prev: AspiredSpec): Promise<AspiredSpec> {
  const s = prev.store;
  if (!s) return { ...prev, resolvedAt: new Date().toISOString() };
  if (!existsSync(join(s.dir, SQLITE_FILE))) {
    throw new RagError('RAG_RELOAD_NO_PREVIOUS', `the previous store version ${s.version} is no longer on disk`);
  }
  const store = await describeStore(s.kind === 'flat' ? s.dir : dirname(s.dir), s.dir, s.kind, s.kind === 'flat' ? null : s.version);
  if (s.kind === 'flat' && store.fingerprint !== s.fingerprint) {
    throw new RagError('RAG_RELOAD_NO_PREVIOUS', 'the previous flat store was overwritten in place; there is nothing left to roll back to');
  }
  return { ...prev, store, key: `${store.version}:${store.fingerprint}|${prev.model.name}:${prev.model.fingerprint}`, resolvedAt: new Date().toISOString() };
}
