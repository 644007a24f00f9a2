import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pruneCacheDir, writeCacheEntry } from '../fs/cache-entry.js';
import { sha256Hex, sourceTag } from '../fs/fingerprint.js';

/**
 * Checked model folder facts kept across restarts in RUNTIME_DIR/model-facts: the ONNX file's
 * sha256 (a 20 MB read and hash) and the parsed config files, so a start on an unchanged model
 * folder neither hashes the ONNX file nor parses tokenizer.json a second time (transformers.js
 * parses it anyway). The key is every file a load reads: device, inode, size, mtime and ctime (a
 * write always changes ctime), the folder, the dtype asked for and the checking code itself. An
 * entry repeats its key and carries the sha256 of its facts; anything else is refused with the
 * reason and the folder is checked from its bytes as before. Written only after a successful
 * load whose files did not change meanwhile.
 */
export const MODEL_FACTS_DIR = 'model-facts';
const FORMAT = 1;
const KEEP = 8;

/** The identity of the named files in dir (a missing file is "-"), the folder, the dtype asked for and this code. */
export async function factsKey(dir: string, rels: readonly string[], wanted: string): Promise<string> {
  const parts: string[] = [];
  for (const rel of rels) {
    const s = await stat(join(dir, rel), { bigint: true }).catch(() => null);
    parts.push(s ? `${rel}:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.isFile() ? 'f' : 'x'}` : `${rel}:-`);
  }
  return JSON.stringify({ format: FORMAT, code: sourceTag(import.meta.url, ['model-loader', 'model-facts-cache']), dir, wanted, files: parts });
}

const fileOf = (cacheDir: string, key: string) => join(cacheDir, MODEL_FACTS_DIR, `${sha256Hex(key).slice(0, 32)}.json`);
const digest = (facts: unknown) => sha256Hex(JSON.stringify(facts));

/** The facts stored under key, or why there are none (`invalid`: an entry was there but is unusable; it is removed). */
export async function readFacts<T>(cacheDir: string, key: string): Promise<{ facts: T } | { facts: null; reason: string; invalid: boolean }> {
  const file = fileOf(cacheDir, key);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return { facts: null, reason: 'no entry', invalid: false };
  }
  const invalid = async (reason: string) => {
    await rm(file, { force: true }).catch(() => undefined);
    return { facts: null, reason, invalid: true } as const;
  };
  let entry: { format?: unknown; key?: unknown; sha256?: unknown; facts?: unknown };
  try {
    entry = JSON.parse(text) as typeof entry;
  } catch {
    return invalid('the entry is not valid JSON (truncated or corrupt)');
  }
  if (entry.format !== FORMAT) return invalid(`format ${String(entry.format)}, expected ${FORMAT}`);
  if (entry.key !== key) return invalid('it was written for other files or another code version');
  if (!entry.facts || typeof entry.facts !== 'object' || entry.sha256 !== digest(entry.facts)) return invalid('its facts do not match their sha256 (corrupt)');
  return { facts: entry.facts as T };
}

/** Store facts under key (temp file + rename) and keep the newest entries; throws on failure (the caller logs it). */
export async function writeFacts(cacheDir: string, key: string, facts: unknown): Promise<void> {
  const dir = join(cacheDir, MODEL_FACTS_DIR);
  await writeCacheEntry(dir, fileOf(cacheDir, key), [Buffer.from(JSON.stringify({ format: FORMAT, key, sha256: digest(facts), facts }), 'utf8')]);
  // A few models at most: keep the newest entries.
  await pruneCacheDir(dir, { suffix: '.json', keep: KEEP }).catch(() => undefined);
}
