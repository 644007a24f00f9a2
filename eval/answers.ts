/**
 * `npm run build && node dist/eval/answers.js [--json]`: the offline extractive answers to a fixed
 * list of questions on the bundled sample corpus (real ingest, model, Chroma, hybrid retrieval
 * with k = DEFAULT_K), each with the sentence that answers it. Used to record before/after answers
 * when the answerer changes; test/integration/extractive-answerer.test.ts asserts the same list.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../src/config.js';
import { chooseModelName } from '../src/embeddings/model-folders.js';
import { loadEmbeddingModel } from '../src/embeddings/model-loader.js';
import { loadDocuments } from '../src/ingest/load-documents.js';
import { publishStoreVersion } from '../src/ingest/publish.js';
import { DEFAULT_CHUNKING, splitDocuments } from '../src/ingest/split-documents.js';
import { createSilentLogger } from '../src/observability/logger.js';
import { extractiveAnswer } from '../src/rag/extractive-answerer.js';
import { fusionSettings, retrieve } from '../src/rag/hybrid.js';
import { Generation, SharedModel } from '../src/reload/generation.js';
import { resolveStoreCandidate } from '../src/store/layout.js';
import { openStoreVersion } from '../src/store/store-version.js';

/** Questions on corpus/sample whose answering sentence is known (a phrase of it). */
export const SAMPLE_ANSWERS = [
  {
    question: 'Why would a worker see the same job twice?',
    answers: ['lease expired before the worker acknowledged it', 'the lease expires and the job becomes visible again', 'visibility timeout is shorter than the job takes'],
  },
  { question: 'Will an urgent task interrupt one that a worker is already busy with?', answers: ['Priorities do not preempt jobs that are already running'] },
  { question: 'What happens to jobs when I restart the server?', answers: ['Nothing is lost', 'Accepted jobs are on disk'] },
  { question: 'How do I pause a queue?', answers: ['hq queue update NAME --paused true'] },
  { question: 'Can Harbor Queue guarantee that a job runs exactly once?', answers: ['No queue can guarantee that on its own'] },
] as const;

const ROOT = resolve(import.meta.dirname, '..', '..');

async function main() {
  const config = loadConfig();
  const modelsDir = config.modelsDir;
  const model = await loadEmbeddingModel({ dir: join(modelsDir, await chooseModelName(modelsDir, config.modelName)), pooling: config.pooling, dtype: config.modelDtype });
  const shared = new SharedModel(model).retain();
  const work = await mkdtemp(join(tmpdir(), 'rag-answers-'));
  const logger = createSilentLogger();
  try {
    const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
    const chunks = await splitDocuments(documents, DEFAULT_CHUNKING);
    await publishStoreVersion({ outDir: join(work, 'store'), chunks, model, logger, documentCount: documents.length });
    const store = await openStoreVersion(await resolveStoreCandidate(join(work, 'store')), { runtimeDir: join(work, 'runtime'), logger });
    const gen = new Generation('answers', shared, store, { maxBatch: 32, maxWaitMs: 2 });
    const out = [];
    try {
      for (const { question, answers } of SAMPLE_ANSWERS) {
        const hits = await retrieve(gen, question, { k: config.defaultK, mode: 'hybrid', ...fusionSettings(config) });
        const sources = hits.map((h) => ({ id: h.id, text: h.text, score: h.score, metadata: h.metadata }));
        const text = await extractiveAnswer(gen, question, sources);
        out.push({ question, answer: text, answered: answers.some((a) => text.toLowerCase().includes(a.toLowerCase())), sources: sources.map((s) => s.id) });
      }
    } finally {
      await gen.dispose();
    }
    if (process.argv.includes('--json')) console.log(JSON.stringify(out, null, 2));
    else for (const o of out) console.log(`Q: ${o.question}\nA: ${o.answer}\n   answers it: ${o.answered ? 'yes' : 'no'}; sources ${o.sources.join(', ')}\n`);
  } finally {
    await shared.release();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
