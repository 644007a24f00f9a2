import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { RagError } from '../errors.js';
import { BOOTSTRAP_MODEL_FILES } from './bootstrap-model.js';
import { fileStamp, sha256File } from '../fs/fingerprint.js';
import { factsKey, readFacts, writeFacts } from './model-facts-cache.js';
import { padBatch, type EncodedRow } from './pad-batch.js';
import { poolTokens, readSentenceProfile, type EmbedKind, type PoolingOverride, type SentenceProfile } from './sentence-config.js';
import { importTransformers } from './transformers-module.js';

export type { EmbedKind, PoolingMode, PoolingOverride, SentenceProfile } from './sentence-config.js';

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

export interface EmbeddingModel {
  /** Stable identity: `<name>@<sha256 of the ONNX file, 12 hex>`. */
  readonly id: string;
  readonly name: string;
  readonly dir: string;
  readonly dtype: ModelDtype;
  readonly dimension: number;
  readonly loadedAt: string;
  readonly loadMs: number;
  /** How texts become vectors: the model folder's sentence-transformers configuration (or defaults). */
  readonly profile: SentenceProfile;
  /**
   * Embed a batch of texts (one model call): the model's query or document prompt is put in
   * front (documents by default: ingest), inputs longer than the model's maximum sequence are
   * truncated, tokens are pooled as the model declares, and normalised when it says so.
   */
  embedBatch(texts: string[], kind?: EmbedKind): Promise<number[][]>;
  dispose(): Promise<void>;
}

export interface LoadModelOptions {
  /** The model folder (config.json, tokenizer.json, tokenizer_config.json, onnx/...). */
  dir: string;
  dtype?: ModelDtype | 'auto';
  /** EMBED_POOLING: `auto` (default) follows the folder's 1_Pooling/config.json, else mean. */
  pooling?: PoolingOverride;
  /**
   * Keep the checked folder facts (ONNX sha256, parsed configs) across restarts under this folder
   * (the service's RUNTIME_DIR; model-facts-cache.ts); `onFactsCache` hears what happened to them.
   */
  factsCacheDir?: string;
  onFactsCache?: (note: { level: 'debug' | 'info' | 'warn'; msg: string; reason?: string }) => void;
}

async function readJsonFile(dir: string, rel: string): Promise<Record<string, unknown>> {
  const path = join(dir, rel);
  let text: string;
  try {
    // A FIFO or device in an untrusted folder would block the read forever.
    if (!(await stat(path)).isFile()) throw Object.assign(new Error(`${rel} is not a regular file`), { code: 'ENOTFILE' });
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
  tokenizerConfig: Record<string, unknown>;
}

/** A cached facts entry has the shape inspectModelFolder returns, for this folder. */
function validFacts(f: ModelFolderFacts, dir: string): boolean {
  const obj = (v: unknown) => !!v && typeof v === 'object' && !Array.isArray(v);
  return (
    f.dir === dir &&
    typeof f.name === 'string' &&
    f.dtype in DTYPE_FILES &&
    f.onnxFile === DTYPE_FILES[f.dtype] &&
    typeof f.onnxSha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(f.onnxSha256) &&
    obj(f.config) &&
    obj(f.tokenizerConfig)
  );
}

/** The files a load reads: when their stamp is unchanged, a folder's facts are not read again. */
const LOADED_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', ...Object.values(DTYPE_FILES)];

const factsCache = new Map<string, { stamp: string; facts: ModelFolderFacts }>();

/**
 * Check a model folder the way transformers.js will read it, before loading, so a broken
 * folder fails with the file it lacks instead of a stack trace from deep inside the loader.
 * Every store reload checks the model too: an unchanged folder (same sizes, mtimes, inodes) is
 * not parsed and hashed again.
 */
export async function inspectModelFolder(dir: string, wanted: ModelDtype | 'auto' = 'auto'): Promise<ModelFolderFacts> {
  const stamp = await fileStamp(dir, LOADED_FILES).catch(() => null);
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
  const tokenizerConfig = await readJsonFile(dir, 'tokenizer_config.json');
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
  return { dir, name: basename(dir), dtype, onnxFile, onnxSha256: await sha256File(join(dir, onnxFile)), config, tokenizerConfig };
}

interface TensorLike {
  dims: number[];
  data: ArrayLike<number | bigint>;
  dispose?: () => void;
}
type Extractor = {
  tokenizer: {
    (text: string, options: { padding: false; truncation: false; return_tensor: false; add_special_tokens?: boolean }): EncodedRow;
    pad_token_id?: number;
    padding_side?: string;
  };
  model: (inputs: Record<string, unknown>) => Promise<Record<string, TensorLike | undefined>>;
  dispose(): Promise<void>;
};

/**
 * Tokenise a batch into padded int64 tensors, truncating each text to maxLength tokens the way
 * Hugging Face tokenizers do: the text is cut and the closing special tokens ([SEP], </s>) are
 * kept. (transformers.js 3.8 cuts the row itself, dropping them, so long inputs would embed
 * differently from the model's reference.)
 */
async function encodeBatch(extractor: Extractor, texts: string[], maxLength: number | null, tailSpecials: number): Promise<{ feeds: Record<string, unknown>; mask: BigInt64Array }> {
  const { Tensor } = await importTransformers();
  const tok = extractor.tokenizer;
  const rows = texts.map((t) => {
    const e = tok(t, { padding: false, truncation: false, return_tensor: false });
    if (maxLength && e.input_ids.length > maxLength) {
      const cut = <T,>(xs: T[]): T[] => [...xs.slice(0, maxLength - tailSpecials), ...xs.slice(xs.length - tailSpecials)];
      return { input_ids: cut(e.input_ids), attention_mask: cut(e.attention_mask), ...(e.token_type_ids ? { token_type_ids: cut(e.token_type_ids) } : {}) };
    }
    return e;
  });
  const padded = padBatch(rows, tok.padding_side === 'left', tok.pad_token_id ?? 0);
  const dims = [rows.length, padded.width];
  const feeds: Record<string, unknown> = { input_ids: new Tensor('int64', padded.inputIds, dims), attention_mask: new Tensor('int64', padded.attentionMask, dims) };
  if (padded.tokenTypeIds) feeds.token_type_ids = new Tensor('int64', padded.tokenTypeIds, dims);
  return { feeds, mask: padded.attentionMask };
}

// transformers.js keeps its settings in one global `env`; loads are serialised so that two
// model loads never race on env.localModelPath.
let loadChain: Promise<unknown> = Promise.resolve();
let bootstrapped: Promise<void> | undefined;

/**
 * transformers.js 3.8 memoises the first ONNX session promise of the process, rejected or not
 * (huggingface/transformers.js#1767): if the first model a process loads is broken, every later
 * load fails too. Loading a tiny known-good model first makes that memo a resolved promise, so a
 * broken model dropped into ./models can never poison the loads that follow it. The tiny model
 * is committed as a module (src/embeddings/bootstrap-model.ts, made by tools/static-model/), so
 * serving never imports the model builder.
 */
function bootstrapSessions(): Promise<void> {
  bootstrapped ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rag-bootstrap-model-'));
    try {
      const modelDir = join(dir, 'bootstrap');
      await mkdir(join(modelDir, 'onnx'), { recursive: true });
      for (const f of BOOTSTRAP_MODEL_FILES) await writeFile(join(modelDir, f.rel), f.text ?? Buffer.from(f.base64 ?? '', 'base64'));
      const { env, pipeline } = await importTransformers();
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
  const { env, pipeline } = await importTransformers();
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
  // Compiled while the folder checks below wait on the disk (the load needs it next).
  importTransformers().catch(() => undefined);
  const wanted = options.dtype ?? 'auto';
  const cacheDir = options.factsCacheDir;
  const note = options.onFactsCache ?? (() => undefined);
  const key = cacheDir ? await factsKey(options.dir, LOADED_FILES, wanted).catch(() => null) : null;
  let facts: ModelFolderFacts | null = null;
  if (cacheDir && key) {
    const r = await readFacts<ModelFolderFacts>(cacheDir, key);
    if (r.facts && !validFacts(r.facts, options.dir)) note({ level: 'warn', msg: 'model facts cache entry not used; checking the model folder from its files', reason: 'its facts are not well-formed' });
    else if (r.facts) facts = r.facts;
    else note({ level: r.invalid ? 'warn' : 'debug', msg: r.invalid ? 'model facts cache entry not used; checking the model folder from its files' : 'model facts cache miss', reason: r.reason });
  }
  const fromCache = facts !== null;
  facts ??= await inspectModelFolder(options.dir, wanted);
  const run = loadChain.then(() => createExtractor(facts));
  loadChain = run.catch(() => undefined);
  const extractor = await run;
  let profile: SentenceProfile;
  try {
    profile = await readSentenceProfile(facts.dir, facts.config, facts.tokenizerConfig, options.pooling ?? 'auto');
  } catch (err) {
    await extractor.dispose().catch(() => undefined);
    throw err;
  }
  const plain = (t: string, specials = true) => extractor.tokenizer(t, { padding: false, truncation: false, return_tensor: false, add_special_tokens: specials }).input_ids;
  // Special tokens the tokenizer puts after the text ([SEP]): kept when a long input is cut.
  const probeIds = plain('hello');
  const probeText = plain('hello', false);
  const head = probeIds.findIndex((_, i) => probeText.every((id, j) => probeIds[i + j] === id));
  const tailSpecials = head >= 0 ? probeIds.length - head - probeText.length : 0;
  // include_prompt false: how many leading tokens the prompt takes (special start token
  // included, trailing special token not), as sentence-transformers measures it.
  const promptLength: Record<EmbedKind, number> = { query: 0, document: 0 };
  if (!profile.includePrompt) {
    for (const kind of ['query', 'document'] as const) {
      const p = profile.prompts[kind];
      if (p) promptLength[kind] = plain(p).length - tailSpecials;
    }
  }
  let disposed = false;

  const embedBatch = async (texts: string[], kind: EmbedKind = 'document'): Promise<number[][]> => {
    if (disposed) throw new RagError('RAG_MODEL_LOAD_FAILED', `model ${facts.name} was disposed`);
    if (texts.length === 0) return [];
    const prefix = profile.prompts[kind];
    const inputs = prefix ? texts.map((t) => prefix + t) : texts;
    let vectors: number[][];
    let dims: number[];
    try {
      // Truncation to the model's own limit: a long input is cut, never an error.
      const { feeds, mask } = await encodeBatch(extractor, inputs, profile.maxLength, tailSpecials);
      const out = await extractor.model(feeds);
      const hidden = out.last_hidden_state ?? out.token_embeddings ?? out.logits;
      if (!hidden) throw new Error(`no token output (outputs: ${Object.keys(out).join(', ')})`);
      dims = hidden.dims;
      if (dims.length !== 3 || dims[0] !== texts.length || !(hidden.data instanceof Float32Array)) {
        throw new RagError('RAG_MODEL_OUTPUT_INVALID', `model ${facts.name} returned token output of shape [${dims.join(', ')}] for ${texts.length} texts`);
      }
      vectors = poolTokens(
        { hidden: hidden.data, dims: dims as [number, number, number], mask, promptLength: prefix ? promptLength[kind] : 0 },
        profile,
      );
    } catch (cause) {
      if (cause instanceof RagError) throw cause;
      throw new RagError('RAG_MODEL_OUTPUT_INVALID', `model ${facts.name} failed to embed: ${(cause as Error).message}`, { cause });
    }
    return vectors;
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
  if (vec.length === 0 || !vec.every(Number.isFinite)) {
    await extractor.dispose().catch(() => undefined);
    throw new RagError('RAG_MODEL_OUTPUT_INVALID', `model ${facts.name} produced non-finite values on the warm-up probe`);
  }
  // The real output decides the dimension: some exports project to a size other than hidden_size.
  const dimension = vec.length;
  if (profile.tokenDimension && dimension !== profile.tokenDimension * profile.pooling.length && profile.poolingSource === 'model') {
    await extractor.dispose().catch(() => undefined);
    throw new RagError(
      'RAG_MODEL_OUTPUT_INVALID',
      `model ${facts.name}: its Pooling config declares ${profile.tokenDimension}-d token vectors but the ONNX model outputs ${dimension / profile.pooling.length}-d`,
    );
  }

  // The facts cache write in flight: serving does not wait for it, dispose() does (a stopped
  // service leaves no write behind it).
  let factsWrite: Promise<unknown> = Promise.resolve();
  if (cacheDir && key && !fromCache) {
    // Only facts whose files did not change during the load.
    const checked = facts;
    factsWrite = factsKey(options.dir, LOADED_FILES, wanted)
      .then((again) => (again === key ? writeFacts(cacheDir, key, checked) : undefined))
      .catch((err: unknown) => note({ level: 'warn', msg: 'could not write the model facts cache (loading is not affected)', reason: (err as Error).message }));
  }

  return {
    id: `${facts.name}@${facts.onnxSha256.slice(0, 12)}`,
    name: facts.name,
    dir: facts.dir,
    dtype: facts.dtype,
    dimension,
    loadedAt: new Date().toISOString(),
    loadMs: Math.round(performance.now() - started),
    profile,
    embedBatch,
    async dispose() {
      if (disposed) return;
      disposed = true;
      await factsWrite.catch(() => undefined);
      await extractor.dispose().catch(() => undefined);
    },
  };
}
