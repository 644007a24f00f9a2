/**
 * `npm run eval`: recall@k and MRR of dense, keyword and hybrid retrieval on labelled question
 * sets, through the real ingest (loaders, splitter, model, Chroma, keyword index) and the real
 * retrieval code. A retrieved chunk is relevant when its text contains the question's answer
 * phrase (whitespace collapsed). Prints a table and writes bench/results/eval-<date>.{json,md}.
 */
import { KeywordIndex } from '../src/store/keyword-index.js';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chooseModelName } from '../src/embeddings/model-folders.js';
import { loadEmbeddingModel } from '../src/embeddings/model-loader.js';
import { loadDocuments } from '../src/ingest/load-documents.js';
import { publishStoreVersion } from '../src/ingest/publish.js';
import { DEFAULT_CHUNKING, splitDocuments } from '../src/ingest/split-documents.js';
import { createSilentLogger } from '../src/observability/logger.js';
import { loadConfig } from '../src/config.js';
import { fusionSettings, retrieve, RETRIEVAL_MODES, type RetrievalMode } from '../src/rag/hybrid.js';
import { Generation, SharedModel } from '../src/reload/generation.js';
import { resolveStoreCandidate } from '../src/store/layout.js';
import { openStoreVersion } from '../src/store/store-version.js';
import { KEYWORD_ANALYSIS, type KeywordAnalysis } from '../src/store/keyword-index.js';
import { NearestWords } from '../src/embeddings/query-expansion.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    k: { type: 'string', default: '5' },
    'models-dir': { type: 'string', default: process.env.MODELS_DIR ?? join(ROOT, 'models') },
    model: { type: 'string', default: process.env.MODEL_NAME },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
    'chunk-size': { type: 'string', default: String(DEFAULT_CHUNKING.chunkSize) },
    'chunk-overlap': { type: 'string', default: String(DEFAULT_CHUNKING.chunkOverlap) },
    /** Ablations, for measuring what each choice is worth: stem, headings-boost, sections, dense-context. */
    without: { type: 'string', multiple: true, default: [] },
    sets: { type: 'string', default: 'sample,pino,held-out' },
    /** Experiment: query expansion with the model's nearest corpus words, as perWord,minCosine,weight. */
    expand: { type: 'string' },
    /** Experiment: weight of the neighbouring chunks' text in BM25. */
    neighbours: { type: 'string' },
  },
});
const without = new Set(values.without);
const analysis: KeywordAnalysis = {
  ...KEYWORD_ANALYSIS,
  ...(without.has('stem') ? { stem: false } : {}),
  fieldBoosts: {
    ...KEYWORD_ANALYSIS.fieldBoosts,
    ...(without.has('headings-boost') ? { headings: 0 } : {}),
    ...(values.neighbours ? { neighbours: Number(values.neighbours) } : {}),
  },
};
const K = Number(values.k);

interface Question {
  id: string;
  question: string;
  source: string;
  answer: string;
  kind: string;
}

/** The sets: a corpus folder (read at eval time, never copied into the repo) and its questions. */
const SETS = [
  { key: 'sample', name: 'sample (Harbor Queue docs, bundled)', docs: join(ROOT, 'corpus', 'sample'), questions: join(ROOT, 'eval', 'questions-sample.json') },
  { key: 'pino', name: 'pino docs (npm dependency, node_modules/pino/docs)', docs: join(ROOT, 'node_modules', 'pino', 'docs'), questions: join(ROOT, 'eval', 'questions-pino.json') },
  // Held out: never tuned on (see eval/heldout/README.md).
  { key: 'held-out', name: 'held-out (six npm READMEs, eval/heldout/docs)', docs: join(ROOT, 'eval', 'heldout', 'docs'), questions: join(ROOT, 'eval', 'questions-heldout.json') },
];

const norm = (s: string) => s.replace(/\s+/g, ' ').trim().toLowerCase();

async function main() {
  const logger = createSilentLogger();
  const config = loadConfig();
  const fusion = fusionSettings(config);
  const modelsDir = resolve(values['models-dir']!);
  const modelName = await chooseModelName(modelsDir, values.model);
  const model = await loadEmbeddingModel({ dir: join(modelsDir, modelName), pooling: config.pooling, dtype: config.modelDtype });
  const shared = new SharedModel(model).retain();
  const work = await mkdtemp(join(tmpdir(), 'rag-eval-'));
  const results: Array<Record<string, unknown>> = [];
  try {
    for (const set of SETS.filter((s) => values.sets!.split(',').includes(s.key))) {
      const questions = JSON.parse(await readFile(set.questions, 'utf8')) as Question[];
      const { documents } = await loadDocuments(set.docs);
      const chunks = await splitDocuments(documents, {
        chunkSize: Number(values['chunk-size']),
        chunkOverlap: Number(values['chunk-overlap']),
        markdownSections: !without.has('sections'),
      });
      const outDir = join(work, `store-${results.length}`);
      const published = await publishStoreVersion({ outDir, chunks, model, logger, documentCount: documents.length, keywordAnalysis: analysis, denseContext: !without.has('dense-context') });
      const store = await openStoreVersion(await resolveStoreCandidate(outDir), { runtimeDir: join(work, 'runtime'), logger });
      const gen = new Generation(`eval-${results.length}`, shared, store, { maxBatch: 32, maxWaitMs: 2 });
      const expander = values.expand ? await NearestWords.build(model, chunks.map((c) => c.text)) : null;
      const [perWord, minCosine, weight] = (values.expand ?? '2,0.6,0.4').split(',').map(Number);
      // Query expansion is an eval-only experiment: the served keyword index lives in a worker thread,
      // so the expanded queries run on a copy of the same shipped index loaded here.
      const backend = gen.store.store;
      const local = expander ? await KeywordIndex.load(published.dir) : null;
      try {
        const row: Record<string, unknown> = { set: set.name, questions: questions.length, chunks: chunks.length, model: model.id };
        for (const mode of RETRIEVAL_MODES) {
          let hits = 0;
          let rr = 0;
          const byKind: Record<string, { n: number; hits: number }> = {};
          for (const q of questions) {
            if (expander) {
              const extra = await expander.expand(q.question, { perWord: perWord!, minCosine: minCosine!, weight: weight! });
              backend.keywordSearch = async (query: string, limit: number) => local!.search(query, limit, extra);
            }
            const got = await retrieve(gen, q.question, { k: 10, mode: mode as RetrievalMode, ...fusion });
            const rank = got.findIndex((h) => norm(h.text).includes(norm(q.answer)));
            const hit = rank >= 0 && rank < K;
            if (hit) hits++;
            if (rank >= 0) rr += 1 / (rank + 1);
            byKind[q.kind] ??= { n: 0, hits: 0 };
            byKind[q.kind]!.n++;
            if (hit) byKind[q.kind]!.hits++;
          }
          row[mode] = {
            [`recall@${K}`]: Math.round((hits / questions.length) * 1000) / 1000,
            'mrr@10': Math.round((rr / questions.length) * 1000) / 1000,
            byKind: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, Math.round((v.hits / v.n) * 1000) / 1000])),
          };
        }
        results.push(row);
      } finally {
        await gen.dispose();
      }
    }
  } finally {
    await shared.release();
    await rm(work, { recursive: true, force: true });
  }

  const lines = [
    `Model: ${model.id} (${model.dimension}-d, pooling ${model.profile.pooling.join('+')}). Keyword analysis: stem ${analysis.stem}, boosts ${JSON.stringify(analysis.fieldBoosts)}, Markdown sections ${!without.has('sections')}${without.size ? ` (ablation: without ${[...without].join(', ')})` : ''}${values.expand ? ` Query expansion ${values.expand}.` : ''} Fusion: dense weight ${fusion.weights.dense}, keyword weight ${fusion.weights.keyword}, RRF k ${fusion.rrfK}, ${fusion.candidates} candidates. Relevant = chunk text contains the labelled answer phrase.`,
    '',
    `| Set | Questions | Chunks | Mode | recall@${K} | MRR@10 | recall@${K} by kind |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    for (const mode of RETRIEVAL_MODES) {
      const m = r[mode] as { byKind: Record<string, number> } & Record<string, number>;
      lines.push(`| ${r.set} | ${r.questions} | ${r.chunks} | ${mode} | ${m[`recall@${K}`]} | ${m['mrr@10']} | ${Object.entries(m.byKind).map(([k, v]) => `${k} ${v}`).join(', ')} |`);
    }
  }
  const table = lines.join('\n');
  console.log(table);
  await mkdir(values.out!, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 10) + (without.size ? `-without-${[...without].join("-")}` : "") + (values.expand ? `-expand-${values.expand}` : "") + (values.neighbours ? `-neighbours-${values.neighbours}` : "");
  await writeFile(join(values.out!, `eval-${stamp}.json`), JSON.stringify({ date: new Date().toISOString(), k: K, results }, null, 2));
  await writeFile(join(values.out!, `eval-${stamp}.md`), `# Retrieval evaluation (${stamp})\n\nProduced by \`npm run eval\`.\n\n${table}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
