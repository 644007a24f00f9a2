import { execFileSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingBatcher } from '../../src/embeddings/batcher.js';
import { LocalTransformersEmbeddings } from '../../src/embeddings/langchain-embeddings.js';
import { loadEmbeddingModel, type EmbeddingModel, type PoolingOverride } from '../../src/embeddings/model-loader.js';
import { FIXTURES, PROJECT_MODEL_DIR, tempDir } from '../helpers/harness.js';
import { cosine } from '../../src/embeddings/similarity.js';

/**
 * The BERT-family fixture (tools/make-bert-fixture.py: WordPiece, token type ids, 2 layers,
 * CLS pooling, Normalize, query/document prompts, max_seq_length 48) loaded by OUR loader,
 * compared with sentence-transformers on the PyTorch weights (reference JSON made by the same
 * script). Variants are made by editing a copy's sentence-transformers configuration.
 */
const FIXTURE = join(FIXTURES, 'models', 'tiny-bert-st');
interface Variant {
  pooling: string;
  normalize: boolean;
  include_prompt: boolean;
  plain?: number[][];
  query?: number[][];
  document?: number[][];
}
interface Reference {
  texts: string[];
  max_seq_length: number;
  token_counts: number[];
  variants: Record<string, Variant>;
}
let ref: Reference;

const norm = (a: number[]) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
const minCosine = (got: number[][], want: number[][]) => Math.min(...got.map((g, i) => cosine(g, want[i]!)));

let tmp: { dir: string; cleanup: () => Promise<void> };
let n = 0;
const models: EmbeddingModel[] = [];

/** A copy of the fixture with some files replaced (null: deleted). */
async function variant(files: Record<string, unknown | null>): Promise<string> {
  const dir = join(tmp.dir, `tiny-bert-v${n++}`);
  await cp(FIXTURE, dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    if (content === null) await rm(join(dir, rel), { recursive: true, force: true });
    else {
      await mkdir(join(dir, rel, '..'), { recursive: true });
      await writeFile(join(dir, rel), typeof content === 'string' ? content : JSON.stringify(content));
    }
  }
  return dir;
}
async function load(dir: string, pooling: PoolingOverride = 'auto'): Promise<EmbeddingModel> {
  const m = await loadEmbeddingModel({ dir, pooling });
  models.push(m);
  return m;
}
const legacyPooling = (mode: string, includePrompt = true) => ({
  word_embedding_dimension: 32,
  pooling_mode_cls_token: mode === 'cls',
  pooling_mode_mean_tokens: mode === 'mean',
  pooling_mode_max_tokens: mode === 'max',
  pooling_mode_mean_sqrt_len_tokens: false,
  pooling_mode_weightedmean_tokens: false,
  pooling_mode_lasttoken: mode === 'lasttoken',
  include_prompt: includePrompt,
});
const MODULES_NO_NORMALIZE = [
  { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
  { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
];

beforeAll(async () => {
  ref = JSON.parse(await readFile(`${FIXTURE}.reference.json`, 'utf8')) as Reference;
  tmp = await tempDir('rag-t-bert-');
});
afterAll(async () => {
  await Promise.all(models.map((m) => m.dispose()));
  await tmp.cleanup();
});

describe('BERT-family fixture: our transformers.js loader vs sentence-transformers (PyTorch)', () => {
  it('as shipped (CLS pooling, Normalize, prompts, max_seq_length 48): query and document embeddings match with cosine >= 0.999', async () => {
    const model = await load(FIXTURE);
    expect(model.profile).toEqual({
      pooling: ['cls'],
      poolingSource: 'model',
      includePrompt: true,
      normalize: true,
      maxLength: 48,
      prompts: { query: 'query: ', document: 'passage: ' },
      tokenDimension: 32,
    });
    expect(model.dimension).toBe(32);
    const q = await model.embedBatch(ref.texts, 'query');
    const d = await model.embedBatch(ref.texts, 'document');
    const cq = minCosine(q, ref.variants.cls!.query!);
    const cd = minCosine(d, ref.variants.cls!.document!);
    console.log(`tiny-bert-st (cls) transformers.js vs PyTorch: min cosine query ${cq.toFixed(7)} (1 - cos = ${(1 - cq).toExponential(1)}), document ${cd.toFixed(7)} (1 - cos = ${(1 - cd).toExponential(1)}) over ${ref.texts.length} texts`);
    expect(cq).toBeGreaterThanOrEqual(0.999);
    expect(cd).toBeGreaterThanOrEqual(0.999);
    for (const v of [...q, ...d]) expect(norm(v)).toBeCloseTo(1, 5);
    // The check can fail: the same texts under the other prompt, or pooled by mean, are further off.
    expect(minCosine(q, ref.variants.cls!.document!)).toBeLessThan(0.999);
    expect(minCosine(d, ref.variants.mean!.document!)).toBeLessThan(0.999);
  });

  it.each(['cls', 'mean', 'max', 'lasttoken'])('pooling %s declared in 1_Pooling/config.json is honoured (cosine >= 0.999 vs PyTorch)', async (mode) => {
    const model = await load(await variant({ '1_Pooling/config.json': legacyPooling(mode) }));
    expect(model.profile.pooling).toEqual([mode]);
    const d = await model.embedBatch(ref.texts, 'document');
    const q = await model.embedBatch(ref.texts, 'query');
    expect(minCosine(d, ref.variants[mode]!.document!)).toBeGreaterThanOrEqual(0.999);
    expect(minCosine(q, ref.variants[mode]!.query!)).toBeGreaterThanOrEqual(0.999);
    // Another mode's reference does not pass: each mode is really a different computation.
    for (const other of ['cls', 'mean', 'max', 'lasttoken'].filter((o) => o !== mode)) {
      expect(minCosine(d, ref.variants[other]!.document!)).toBeLessThan(0.999);
    }
  });

  it('the sentence-transformers 5+/6 format (pooling_mode: "lasttoken") reads like the legacy keys', async () => {
    const model = await load(await variant({ '1_Pooling/config.json': { embedding_dimension: 32, pooling_mode: 'lasttoken', include_prompt: true } }));
    expect(model.profile.pooling).toEqual(['lasttoken']);
    expect(minCosine(await model.embedBatch(ref.texts, 'document'), ref.variants.lasttoken!.document!)).toBeGreaterThanOrEqual(0.999);
  });

  it('EMBED_POOLING overrides the model (mean over a CLS model) and says so in the profile', async () => {
    const model = await load(FIXTURE, 'mean');
    expect(model.profile).toMatchObject({ pooling: ['mean'], poolingSource: 'override' });
    expect(minCosine(await model.embedBatch(ref.texts, 'document'), ref.variants.mean!.document!)).toBeGreaterThanOrEqual(0.999);
  });

  it('without a Normalize module the vectors are returned unnormalised, as PyTorch gives them', async () => {
    const model = await load(await variant({ 'modules.json': MODULES_NO_NORMALIZE, 'config_sentence_transformers.json': null }));
    expect(model.profile).toMatchObject({ normalize: false, prompts: {} });
    const got = await model.embedBatch(ref.texts);
    const want = ref.variants['cls-unnormalized']!.plain!;
    expect(minCosine(got, want)).toBeGreaterThanOrEqual(0.999);
    got.forEach((v, i) => expect(norm(v)).toBeCloseTo(norm(want[i]!), 2));
    expect(norm(got[0]!)).toBeGreaterThan(2);
  });

  it('include_prompt false masks the prompt tokens out of the pooling', async () => {
    const model = await load(await variant({ '1_Pooling/config.json': legacyPooling('mean', false) }));
    expect(model.profile.includePrompt).toBe(false);
    const q = await model.embedBatch(ref.texts, 'query');
    expect(minCosine(q, ref.variants['mean-exclude-prompt']!.query!)).toBeGreaterThanOrEqual(0.9999);
    // With the prompt included the vectors are measurably different.
    expect(minCosine(q, ref.variants.mean!.query!)).toBeLessThan(0.9999);
  });

  it('long input is truncated to max_seq_length (closing [SEP] kept), never an error', async () => {
    const model = await load(FIXTURE);
    expect(ref.token_counts.at(-1)).toBe(ref.max_seq_length); // the reference text was cut by PyTorch too
    const huge = 'the scheduler enqueues every missed run when catch-up is enabled '.repeat(3000); // ~36k tokens, 128 positions
    const [a, b] = await model.embedBatch([huge, huge.slice(0, 400)], 'document');
    expect(a!.every(Number.isFinite)).toBe(true);
    expect(cosine(a!, b!)).toBeGreaterThan(0.99999); // both are the first 46 word pieces + [SEP]
  });

  it('query prompt on questions (batcher, LangChain embedQuery), document prompt at ingest (embedDocuments, embedBatch default)', async () => {
    const model = await load(FIXTURE);
    const batcher = new EmbeddingBatcher(model, { maxBatch: 8, maxWaitMs: 1 });
    const lc = new LocalTransformersEmbeddings(model, batcher);
    const text = ref.texts[0]!;
    const want = { query: ref.variants.cls!.query![0]!, document: ref.variants.cls!.document![0]! };
    expect(cosine(await batcher.embed(text), want.query)).toBeGreaterThanOrEqual(0.999);
    expect(cosine(await lc.embedQuery(text), want.query)).toBeGreaterThanOrEqual(0.999);
    expect(cosine((await lc.embedDocuments([text]))[0]!, want.document)).toBeGreaterThanOrEqual(0.999);
    expect(cosine((await model.embedBatch([text]))[0]!, want.document)).toBeGreaterThanOrEqual(0.999);
    expect(cosine(want.query, want.document)).toBeLessThan(0.99);
  });

  it('a folder without sentence-transformers files (our static model) keeps mean pooling, normalisation, no prompts', async () => {
    const model = await load(PROJECT_MODEL_DIR);
    expect(model.profile).toMatchObject({ pooling: ['mean'], poolingSource: 'default', normalize: true, prompts: {}, includePrompt: true });
  });
});

describe('hostile sentence-transformers configuration: a clear RAG_MODEL_FILE_INVALID, never a hang or a silent default', () => {
  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    ['modules.json not JSON', () => variant({ 'modules.json': '[{' }), /modules\.json .* not valid JSON/],
    ['modules.json not a list', () => variant({ 'modules.json': { a: 1 } }), /modules\.json .* not a list/],
    ['module path escapes the folder', () => variant({ 'modules.json': [{ path: '../../etc', type: 'sentence_transformers.models.Pooling' }] }), /outside the model folder/],
    ['absolute module path', () => variant({ 'modules.json': [{ path: '/etc', type: 'sentence_transformers.models.Pooling' }] }), /not a relative folder/],
    [
      'a Dense module (weights not in the ONNX export)',
      () => variant({ 'modules.json': [...MODULES_NO_NORMALIZE, { idx: 2, name: '2', path: '2_Dense', type: 'sentence_transformers.models.Dense' }] }),
      /declares a Dense module, which this loader cannot apply/,
    ],
    ['Pooling declared but its config missing', () => variant({ '1_Pooling/config.json': null }), /1_Pooling\/config\.json .* is missing/],
    ['unknown pooling_mode', () => variant({ '1_Pooling/config.json': { pooling_mode: 'median' } }), /unknown pooling_mode "median"/],
    ['prompt not a string', () => variant({ 'config_sentence_transformers.json': { prompts: { query: 42 } } }), /prompt that is not a string/],
    [
      'Pooling config is a FIFO',
      async () => {
        const dir = await variant({ '1_Pooling/config.json': null });
        execFileSync('mkfifo', [join(dir, '1_Pooling', 'config.json')]);
        return dir;
      },
      /not a regular file/,
    ],
    [
      'Pooling config links outside the folder',
      async () => {
        const dir = await variant({ '1_Pooling/config.json': null });
        await writeFile(join(tmp.dir, 'outside.json'), JSON.stringify(legacyPooling('mean')));
        await symlink(join(tmp.dir, 'outside.json'), join(dir, '1_Pooling', 'config.json'));
        return dir;
      },
      /points outside the model folder/,
    ],
    ['Pooling dimension disagrees with the ONNX output', () => variant({ '1_Pooling/config.json': { ...legacyPooling('cls'), word_embedding_dimension: 64 } }), /declares 64-d token vectors but the ONNX model outputs 32-d/],
  ];
  it.each(cases)('%s', async (_name, make, message) => {
    const dir = await make();
    const err = await loadEmbeddingModel({ dir }).then(
      () => null,
      (e: unknown) => e as { code?: string; message: string },
    );
    expect(err?.code).toMatch(/^RAG_MODEL_(FILE_INVALID|OUTPUT_INVALID)$/);
    expect(err?.message).toMatch(message);
  });
});
