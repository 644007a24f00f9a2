import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

let codeTagMemo: string | undefined;
function codeTag(): string {
  if (codeTagMemo) return codeTagMemo;
  const h = createHash('sha256');
  for (const f of ['./model-loader.js', './model-facts-cache.js']) {
    try {
      const url = new URL(f, import.meta.url);
      const path = fileURLToPath(url);
      h.update(readFileSync(import.meta.url.endsWith('.ts') ? path.replace(/\.js$/, '.ts') : path));
    } catch {
      h.update(`missing ${f}`);
    }
  }
  codeTagMemo = h.digest('hex').slice(0, 16);
  return codeTagMemo;
}

/** The identity of the named files in dir (a missing file is "-"). */
export async function factsKey(dir: string, rels: readonly string[], wanted: string): Promise<string> {
  const parts: string[] = [];
  for (const rel of rels) {
    const s = await stat(join(dir, rel), { bigint: true }).catch(() => null);
    parts.push(s ? `${rel}:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.isFile() ? 'f' : 'x'}` : `${rel}:-`);
  }
  return JSON.stringify({ format: FORMAT, code: codeTag(), dir, wanted, files: parts });
}

const fileOf = (cacheDir: string, key: string) => join(cacheDir, MODEL_FACTS_DIR, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`);
const digest = (facts: unknown) => createHash('sha256').update(JSON.stringify(facts)).digest('hex');

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

/** Store facts under key (temp file + rename); throws on failure (the caller logs it). */
export async function writeFacts(cacheDir: string, key: string, facts: unknown): Promise<void> {
  const dir = join(cacheDir, MODEL_FACTS_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = fileOf(cacheDir, key);
  const tmp = join(dir, `.tmp-p${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(tmp, JSON.stringify({ format: FORMAT, key, sha256: digest(facts), facts }), { mode: 0o600, flag: 'wx' });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  // A few models at most: keep the newest entries.
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
  if (names.length > KEEP) {
    const aged = await Promise.all(names.map(async (n) => ({ n, t: (await stat(join(dir, n)).catch(() => null))?.mtimeMs ?? 0 })));
    aged.sort((a, b) => b.t - a.t);
    for (const { n } of aged.slice(KEEP)) await rm(join(dir, n), { force: true }).catch(() => undefined);
  }
}
