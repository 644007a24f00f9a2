#!/usr/bin/env node
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildStaticModel } from './static-model-builder.js';

/** `node dist/src/embeddings/build-model-cli.js [--out models/glove-sif-100d] [--vocab 50000] [--dims N] [--force]` */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'models/glove-sif-100d' },
      vocab: { type: 'string', default: '50000' },
      dims: { type: 'string' },
      force: { type: 'boolean', default: false },
    },
  });
  const outDir = resolve(values.out);
  const vocabSize = Number(values.vocab);
  const dimensions = values.dims ? Number(values.dims) : undefined;
  if (!Number.isInteger(vocabSize) || vocabSize < 10) throw new Error(`--vocab must be an integer >= 10, got ${values.vocab}`);
  if (dimensions !== undefined && (!Number.isInteger(dimensions) || dimensions < 1)) throw new Error(`--dims must be a positive integer`);
  if (!values.force) {
    const existing = await readFile(join(outDir, 'config.json'), 'utf8').then((t) => JSON.parse(t) as { rag_static_model?: { vocab_size?: number; dimensions?: number; common_component_removed?: boolean } }, () => null);
    const meta = existing?.rag_static_model;
    if (meta && meta.vocab_size === vocabSize && meta.common_component_removed && (dimensions === undefined || meta.dimensions === dimensions)) {
      console.log(`build-model: ${outDir} is up to date (use --force to rebuild)`);
      return;
    }
  }
  const t0 = performance.now();
  const result = await buildStaticModel({ outDir, vocabSize, ...(dimensions ? { dimensions } : {}) });
  console.log(`build-model: wrote ${result.outDir} (${result.vocabSize} tokens x ${result.dimension} dims) in ${Math.round(performance.now() - t0)} ms`);
}

main().catch((err: unknown) => {
  console.error(`build-model failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
