import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_ANSWERS } from '../../eval/answers.js';
import type { EmbeddingModel } from '../../src/embeddings/model-loader.js';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { splitDocuments, type Chunk } from '../../src/ingest/split-documents.js';
import { extractiveAnswer, splitUnits } from '../../src/rag/extractive-answerer.js';
import type { Source } from '../../src/rag/sources.js';
import { KeywordIndex } from '../../src/store/keyword-index.js';
import { keywordDoc } from '../../src/ingest/keyword-docs.js';
import { ROOT, testModel } from '../helpers/harness.js';

/**
 * The offline answerer on the bundled sample corpus, with the real model and the real splitter:
 * questions whose answering sentence is known. Sources are the keyword index's top 4 chunks for
 * the question, with the chunk holding the answer put in if retrieval missed it (retrieval quality
 * is measured by `npm run eval`, not here).
 */
let model: EmbeddingModel;
let chunks: Chunk[];
let index: KeywordIndex;

const toSource = (c: Chunk): Source => ({ id: c.id, text: c.text, score: 1, metadata: c.metadata });
function sourcesFor(question: string, answers: readonly string[]): Source[] {
  const byId = new Map(chunks.map((c) => [c.id, c]));
  const top = index.search(question, 4).map((h) => byId.get(h.id)!);
  const holder = chunks.find((c) => answers.some((a) => c.text.replace(/\s+/g, ' ').includes(a)))!;
  expect(holder, `the corpus has a chunk with one of ${answers.join(' | ')}`).toBeTruthy();
  if (!top.some((c) => c.id === holder.id)) top.splice(3, 1, holder);
  return top.map(toSource);
}
/** The answer's quoted sentences (without their [n] markers). */
const quoted = (answer: string) => answer.split(/\s*\[\d+\]\s*/).filter(Boolean);

beforeAll(async () => {
  model = await testModel();
  const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
  chunks = await splitDocuments(documents, { chunkSize: 400, chunkOverlap: 60 });
  index = KeywordIndex.build(chunks.map(keywordDoc));
});

describe('extractive answers on the sample corpus', () => {
  it.each(SAMPLE_ANSWERS.map((s) => [s.question, s.answers] as const))('%s -> quotes the answering sentence', async (question, answers) => {
    const sources = sourcesFor(question, answers);
    const answer = await extractiveAnswer({ model }, question, sources);
    expect(answers.some((a) => answer.includes(a)), answer).toBe(true);
    // Never a heading, a question, or the question itself.
    const contextLines = new Set(sources.flatMap((s) => splitUnits(s.text).filter((u) => u.kind !== 'sentence').map((u) => u.text.toLowerCase())));
    for (const q of quoted(answer)) {
      expect(q.endsWith('?'), q).toBe(false);
      expect(contextLines.has(q.toLowerCase().replace(/\.$/, '')), q).toBe(false);
      expect(q.toLowerCase()).not.toContain(question.toLowerCase().replace(/\?$/, ''));
    }
  });

  it('the issue\'s example: "Why would a worker see the same job twice?" is not answered with headings and restated questions', async () => {
    const question = 'Why would a worker see the same job twice?';
    const sources = sourcesFor(question, SAMPLE_ANSWERS[0].answers);
    const answer = await extractiveAnswer({ model }, question, sources);
    for (const bad of ['Why did my job run twice', 'WORKERS SEE THE SAME JOB TWICE', 'Why a job can run twice']) expect(answer).not.toContain(bad);
  });

  it('near-duplicates (overlapping chunks, the same chunk twice) are quoted once', async () => {
    const question = 'How do I pause a queue?';
    const [first] = sourcesFor(question, SAMPLE_ANSWERS[3].answers).filter((s) => s.text.includes('--paused true'));
    const answer = await extractiveAnswer({ model }, question, [first!, { ...first!, id: 'copy' }, { ...first!, id: 'copy-2', text: first!.text.slice(40) }]);
    const q = quoted(answer).map((s) => s.toLowerCase());
    expect(new Set(q).size).toBe(q.length);
    expect(q.filter((s) => s.includes('--paused true'))).toHaveLength(1);
  });

  it('spreads across sources when more than one has an answer', async () => {
    const question = 'Why would a worker see the same job twice?';
    const answer = await extractiveAnswer({ model }, question, sourcesFor(question, SAMPLE_ANSWERS[0].answers));
    const cited = new Set([...answer.matchAll(/\[(\d+)\]/g)].map((m) => m[1]));
    expect(cited.size).toBeGreaterThanOrEqual(2);
  });

  it('no sources: says so', async () => {
    expect(await extractiveAnswer({ model }, 'anything?', [])).toBe('No relevant passages were found in the store for this question.');
  });
});

describe('splitUnits: what is context and what may be quoted', () => {
  const table: Array<[string, string, Array<[string, string]>]> = [
    ['Markdown heading', '## Why a job can run twice\n\nA worker leases a job, runs it.', [['heading', 'Why a job can run twice'], ['sentence', 'A worker leases a job, runs it.']]],
    ['html-to-text capitals heading', 'WORKERS SEE THE SAME JOB TWICE\n\n * The visibility timeout is too short.', [['heading', 'WORKERS SEE THE SAME JOB TWICE'], ['sentence', 'The visibility timeout is too short.']]],
    ['FAQ question line', 'How do I pause a queue?\nRun hq queue update NAME --paused true.', [['question', 'How do I pause a queue?'], ['sentence', 'Run hq queue update NAME --paused true.']]],
    ['heading glued to its paragraph', '# Overview\nHarbor Queue is a job queue.', [['heading', 'Overview'], ['sentence', 'Harbor Queue is a job queue.']]],
    ['code fences are not quoted', 'Run it like this:\n\n```sh\nhq worker --queue emails ./send.sh and more words\n```', [['sentence', 'Run it like this:']]],
    ['too short to be an answer', 'Yes.\n\nSee above.', []],
  ];
  it.each(table)('%s', (_name, text, want) => {
    expect(splitUnits(text).map((u) => [u.kind, u.text])).toEqual(want);
  });

  it('a sentence knows the heading or question it follows, and its place after it', () => {
    const units = splitUnits('What happens to jobs when I restart the server?\nNothing is lost. Accepted jobs are on disk.');
    expect(units.filter((u) => u.kind === 'sentence').map((u) => [u.context, u.position])).toEqual([
      ['What happens to jobs when I restart the server?', 0],
      ['What happens to jobs when I restart the server?', 1],
    ]);
  });
});
