import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BOOTSTRAP_MODEL_FILES, BOOTSTRAP_SPEC } from '../../src/embeddings/bootstrap-model.js';
import { writeStaticModelFolder } from '../../src/embeddings/static-model-builder.js';
import { tempDir } from '../helpers/harness.js';

describe('the bootstrap model model-loader.ts writes at start-up (src/embeddings/bootstrap-model.ts)', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await cleanup?.();
    cleanup = undefined;
  });

  it('is byte for byte what writeStaticModelFolder makes for its spec', async () => {
    const t = await tempDir('rag-t-bootstrap-');
    cleanup = t.cleanup;
    const out = join(t.dir, 'bootstrap');
    const written = await writeStaticModelFolder({ outDir: out, ...BOOTSTRAP_SPEC });
    const rels = [...written].sort();
    expect(Object.keys(BOOTSTRAP_MODEL_FILES).sort()).toEqual(rels);
    for (const rel of rels) {
      expect(Buffer.from(BOOTSTRAP_MODEL_FILES[rel]!, 'base64').equals(await readFile(join(out, rel))), rel).toBe(true);
    }
  });
});
