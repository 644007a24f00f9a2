import { sha256File } from '../file-hash.js';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { RagError } from '../errors.js';

/** ONNX file transformers.js 3.x loads for each dtype (see its `DEFAULT_DTYPE_SUFFIX_MAPPING`). */
export const DTYPE_FILES = {
  fp32: 'onnx/model.onnx',
  fp16: 'onnx/model_fp16.onnx',
  q8: 'onnx/model_quantized.onnx',
  int8: 'onnx/model_int8.onnx',
  uint8: 'onnx/model_uint8.onnx',
  q4: 'onnx/model_q4.onnx',
} as const;
export type ModelDtype = keyof typeof DTYPE_FILES;
export type Pooling = 'mean' | 'cls';

export interface EmbeddingModel {
  /** Stable identity: `<name>@<sha256 of the ONNX file, 12 hex>`. */
  readonly id: string;
  readonly name: string;
  readonly dir: string;
  readonly dtype: ModelDtype;
  readonly dimension: number;
  readonly loadedAt: string;
  readonly loadMs: number;
  /** Embed a batch of texts into L2-normalised vectors (one model call). */
  embedBatch(texts: string[]): Promise<number[][]>;
  dispose(): Promise<void>;
}

export interface LoadModelOptions {
  /** The model folder (config.json, tokenizer.json, tokenizer_config.json, onnx/...). */
  dir: string;
  dtype?: ModelDtype | 'auto';
  pooling?: Pooling;
}

async function readJsonFile(dir: string, rel: string): Promise<Record<string, unknown>> {
  const path = join(dir, rel);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new RagError('RAG_MODEL_FILE_MISSING', `model folder ${dir} has no ${rel}`, { cause, details: { file: rel } });
  }
  try {
    const value: unknown = JSON.parse(text);
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new RagError('RAG_MODEL_FILE_INVALID', `model file ${rel} in ${dir} is not valid JSON (${(cause as Error).message})`, {
      cause,
      details: { file: rel },
    });
  }
}

export interface ModelFolderFacts {
  dir: string;
  name: string;
  dtype: ModelDtype;
  onnxFile: string;
  onnxSha256: string;
  config: Record<string, unknown>;
}

/** Size+mtime of the files a load reads: when unchanged, a folder's facts are not read again. */
async function folderStamp(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const rel of ['config.json', 'tokenizer.json', 'tokenizer_config.json', ...Object.values(DTYPE_FILES)]) {
    const s = await stat(join(dir, rel)).catch(() => null);
    parts.push(s ? `${rel}:${s.size}:${s.mtimeMs}:${s.ino}` : `${rel}:-`);
  }
  return parts.join('|');
}

const factsCache = new Map<string, { stamp: string; facts: ModelFolderFacts }>();

/**
 * Check a model folder the way transformers.js will read it, before loading, so a broken
 * folder fails with the file it lacks instead of a stack trace from deep inside the loader.
 * Every store reload checks the model too: an unchanged folder (same sizes, mtimes, inodes) is
 * not parsed and hashed again.
 */
export async function inspectModelFolder(dir: string, wanted: ModelDtype | 'auto' = 'auto'): Promise<ModelFolderFacts> {
  const stamp = await folderStamp(dir).catch(() => null);
  const key = `${dir}\0${wanted}`;
  const hit = factsCache.get(key);
  if (stamp && hit && hit.stamp === stamp) return hit.facts;
  const facts = await inspectModelFolderUncached(dir, wanted);
  if (stamp) factsCache.set(key, { stamp, facts });
  return facts;
}

async function inspectModelFolderUncached(dir: string, wanted: ModelDtype | 'auto'): Promise<ModelFolderFacts> {
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new Error('not a directory');
  } catch (cause) {
    throw new RagError('RAG_MODEL_NOT_FOUND', `model folder ${dir} does not exist`, { cause });
  }
  const config = await readJsonFile(dir, 'config.json');
  const tokenizer = await readJsonFile(dir, 'tokenizer.json');
  if (typeof tokenizer.model !== 'object' || tokenizer.model === null) {
    throw new RagError('RAG_MODEL_FILE_INVALID', `model file tokenizer.json in ${dir} has no "model" section`, { details: { file: 'tokenizer.json' } });
  }
  await readJsonFile(dir, 'tokenizer_config.json');
  const tjs = config['transformers.js_config'] as { dtype?: unknown } | undefined;
  const dtype: ModelDtype =
    wanted !== 'auto' ? wanted : typeof tjs?.dtype === 'string' && tjs.dtype in DTYPE_FILES ? (tjs.dtype as ModelDtype) : 'fp32';
  const onnxFile = DTYPE_FILES[dtype];
  let size: number;
  try {
    size = (await stat(join(dir, onnxFile))).size;
  } catch (cause) {
    throw new RagError('RAG_MODEL_FILE_MISSING', `model folder ${dir} has no ${onnxFile} (dtype ${dtype})`, { cause, details: { file: onnxFile } });
  }
  if (size < 16) {
    throw new RagError('RAG_MODEL_FILE_INVALID', `model file ${onnxFile} in ${dir} is truncated (${size} bytes)`, { details: { file: onnxFile } });
  }
  return { dir, name: basename(dir), dtype, onnxFile, onnxSha256: await sha256File(join(dir, onnxFile)), config };
}

type Extractor = {
  (texts: string[], options: { pooling: Pooling; normalize: boolean }): Promise<{ dims: number[]; data: Float32Array; tolist(): number[][] }>;
  dispose(): Promise<void>;
};

// transformers.js keeps its settings in one global `env`; loads are serialised so that two
// model loads never race on env.localModelPath.
let loadChain: Promise<unknown> = Promise.resolve();
let bootstrapped: Promise<void> | undefined;

/**
 * transformers.js 3.8 memoises the first ONNX session promise of the process, rejected or not
 * (huggingface/transformers.js#1767): if the first model a process loads is broken, every later
 * load fails too. Loading a tiny known-good model first makes that memo a resolved promise, so a
 * broken model dropped into ./models can never poison the loads that follow it.
 */
function bootstrapSessions(): Promise<void> {
  bootstrapped ??= (async () => {
    const { writeStaticModelFolder } = await import('./static-model-builder.js');
    const dir = await mkdtemp(join(tmpdir(), 'rag-bootstrap-model-'));
    try {
      const modelDir = join(dir, 'bootstrap');
      await writeStaticModelFolder({ outDir: modelDir, words: ['ok'], rows: [[1, 0]], dimension: 2, quantized: false, meta: { bootstrap: true } });
      const { env, pipeline } = await import('@huggingface/transformers');
      env.allowRemoteModels = false;
      env.useFSCache = false;
      env.localModelPath = dir + '/';
      const p = (await pipeline('feature-extraction', 'bootstrap', { local_files_only: true, dtype: 'fp32', device: 'cpu' })) as unknown as Extractor;
      await p.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return bootstrapped;
}

async function createExtractor(facts: ModelFolderFacts): Promise<Extractor> {
  await bootstrapSessions();
  const { env, pipeline } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.localModelPath = dirname(facts.dir) + '/';
  try {
    return (await pipeline('feature-extraction', facts.name, {
      local_files_only: true,
      dtype: facts.dtype,
      device: 'cpu',
    })) as unknown as Extractor;
  } catch (cause) {
    const msg = cause instanceof Error ? cause.message : String(cause);
    // onnxruntime reports a broken protobuf; the tokenizer reports a bad vocabulary.
    const file = /onnx|protobuf|session|graph/i.test(msg) ? facts.onnxFile : /tokeniz/i.test(msg) ? 'tokenizer.json' : undefined;
    throw new RagError(
      'RAG_MODEL_LOAD_FAILED',
      `model ${facts.name} failed to load${file ? ` (${file} is not valid)` : ''}: ${msg.slice(0, 300)}`,
      { cause, details: { file } },
    );
  }
}

/** Load a transformers.js feature-extraction model from a local folder, fully offline, and warm it up. */
export async function loadEmbeddingModel(options: LoadModelOptions): Promise<EmbeddingModel> {
  const started = performance.now();
  const facts = await inspectModelFolder(options.dir, options.dtype ?? 'auto');
  const run = loadChain.then(() => createExtractor(facts));
  loadChain = run.catch(() => undefined);
  const extractor = await run;
  const pooling = options.pooling ?? 'mean';
  let disposed = false;

  const embedBatch = async (texts: string[]): Promise<number[][]> => {
    if (disposed) throw new RagError('RAG_MODEL_LOAD_FAILED', `model ${facts.name} was disposed`);
    if (texts.length === 0) return [];
    let out;
    try {
      out = await extractor(texts, { pooling, normalize: true });
    } catch (cause) {
      throw new RagError('RAG_MODEL_OUTPUT_INVALID', `model ${facts.name} failed to embed: ${(cause as Error).message}`, { cause });
    }
    const [rows, dim] = out.dims;
    if (out.dims.length !== 2 || rows !== texts.length || !dim) {
      throw new RagError('RAG_MODEL_OUTPUT_INVALID', `model ${facts.name} returned shape [${out.dims.join(', ')}] for ${texts.length} texts`);
    }
    const result: number[][] = new Array(rows);
    for (let r = 0; r < rows; r++) result[r] = Array.from(out.data.subarray(r * dim, (r + 1) * dim));
    return result;
  };

  // Warm-up: the first run allocates; it also tells the real output dimension.
  let probe: number[][];
  try {
    probe = await embedBatch(['warm-up probe sentence for the embedding model']);
  } catch (err) {
    await extractor.dispose().catch(() => undefined);
    throw err;
  }
  const vec = probe[0]!;
  if (!vec.every(Number.isFinite)) {
    await extractor.dispose().catch(() => undefined);
    throw new RagError('RAG_MODEL_OUTPUT_INVALID', `model ${facts.name} produced non-finite values on the warm-up probe`);
  }
  // The real output decides the dimension: some exports project to a size other than hidden_size.
  const dimension = vec.length;

  return {
    id: `${facts.name}@${facts.onnxSha256.slice(0, 12)}`,
    name: facts.name,
    dir: facts.dir,
    dtype: facts.dtype,
    dimension,
    loadedAt: new Date().toISOString(),
    loadMs: Math.round(performance.now() - started),
    embedBatch,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await extractor.dispose().catch(() => undefined);
    },
  };
}
