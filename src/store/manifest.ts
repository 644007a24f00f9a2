import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { z } from 'zod';
import { RagError } from '../errors.js';
import { sha256File } from '../fs/fingerprint.js';

export const MANIFEST_FILE = 'manifest.json';

export const manifestSchema = z.object({
  formatVersion: z.literal(1),
  version: z.string().min(1),
  createdAt: z.string().min(1),
  collection: z.string().min(3),
  embedding: z.object({
    model: z.string().min(1),
    modelId: z.string().min(1),
    dimension: z.number().int().positive(),
  }),
  chunkCount: z.number().int().nonnegative(),
  documentCount: z.number().int().nonnegative().optional(),
  chunking: z.object({ chunkSize: z.number().int(), chunkOverlap: z.number().int() }).optional(),
  files: z.record(z.string(), z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() })),
});
export type StoreManifest = z.infer<typeof manifestSchema>;

/** Every regular file below dir (relative, '/'-separated), sorted. */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).split(sep).join('/'))
    .sort();
}

export async function describeFiles(dir: string, exclude: string[] = [MANIFEST_FILE]): Promise<StoreManifest['files']> {
  const files: StoreManifest['files'] = {};
  for (const rel of await listFiles(dir)) {
    if (exclude.includes(rel)) continue;
    const path = join(dir, rel);
    files[rel] = { sha256: await sha256File(path), size: (await stat(path)).size };
  }
  return files;
}

/** Read and schema-check manifest.json; null when the folder has none. */
export async function readManifest(dir: string): Promise<StoreManifest | null> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RagError('RAG_STORE_MANIFEST_INVALID', `${MANIFEST_FILE} in ${dir} cannot be read`, { cause: err });
  }
  return parseManifest(text, dir);
}

/** Schema-check the text of a manifest.json (read by the caller, e.g. through src/fs). */
export function parseManifest(text: string, dir: string): StoreManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new RagError('RAG_STORE_MANIFEST_INVALID', `${MANIFEST_FILE} in ${dir} is not valid JSON`, { cause });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new RagError(
      'RAG_STORE_MANIFEST_INVALID',
      `${MANIFEST_FILE} in ${dir} is invalid: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'unknown problem'}`,
      { cause: parsed.error },
    );
  }
  for (const rel of Object.keys(parsed.data.files)) {
    if (rel.split('/').some((p) => p === '..' || p === '') || rel.startsWith('/')) {
      throw new RagError('RAG_STORE_MANIFEST_INVALID', `${MANIFEST_FILE} lists a path outside the store: ${rel}`);
    }
  }
  return parsed.data;
}

/** Check that every file the manifest lists is present with its size and sha256. */
export async function verifyManifestFiles(dir: string, manifest: StoreManifest): Promise<void> {
  for (const [rel, want] of Object.entries(manifest.files)) {
    if (rel.includes('..') || rel.startsWith('/')) {
      throw new RagError('RAG_STORE_MANIFEST_INVALID', `${MANIFEST_FILE} lists a path outside the store: ${rel}`);
    }
    const path = join(dir, rel);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (cause) {
      throw new RagError('RAG_STORE_FILE_MISSING', `store file ${rel} listed in ${MANIFEST_FILE} is missing`, { cause, details: { file: rel } });
    }
    if (size !== want.size) {
      throw new RagError('RAG_STORE_CHECKSUM_MISMATCH', `store file ${rel} has ${size} bytes, ${MANIFEST_FILE} says ${want.size}`, {
        details: { file: rel },
      });
    }
    const got = await sha256File(path);
    if (got !== want.sha256) {
      throw new RagError('RAG_STORE_CHECKSUM_MISMATCH', `store file ${rel} does not match its sha256 in ${MANIFEST_FILE}`, {
        details: { file: rel, expected: want.sha256, actual: got },
      });
    }
  }
}
