import { join } from 'node:path';
import { RunnableLambda } from '@langchain/core/runnables';
import type { Document } from '@langchain/core/documents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fusionSettings } from '../../src/rag/hybrid.js';
import { GenerationRetriever, SCORES_KEY } from '../../src/rag/retriever.js';
import { FIXTURES, postJson, startTestService, type TestService } from '../helpers/harness.js';

/**
 * The LangChain adapter (GenerationRetriever) on a real service's generation: a LangChain user
 * gets, through BaseRetriever's own invoke and in a chain, what the request path serves.
 */
let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({ docs: join(FIXTURES, 'docs-hybrid') });
});
afterAll(async () => {
  await svc?.stop();
});

type Scores = { score: number; denseScore?: number; keywordScore?: number };
const scoresOf = (d: Document) => d.metadata[SCORES_KEY] as Scores;
const round = (x: number) => Math.round(x * 1e6) / 1e6;

describe('GenerationRetriever (LangChain BaseRetriever adapter)', () => {
  it.each(['hybrid', 'dense', 'keyword'] as const)('%s: the same chunks, order and scores as /v1/retrieve', async (mode) => {
    const question = 'what does QX7731 mean';
    const http = await postJson(`${svc.url}/v1/retrieve`, { question, k: 4, mode });
    expect(http.status).toBe(200);
    const lease = svc.service.manager.acquire();
    try {
      const retriever = new GenerationRetriever(lease.generation, { k: 4, mode, fusion: fusionSettings(svc.config) });
      const docs = await retriever.invoke(question);
      const want = http.body.sources as Array<{ id: string; text: string; score: number; denseScore?: number; keywordScore?: number; metadata: Record<string, unknown> }>;
      expect(docs.length).toBe(want.length);
      expect(docs.length).toBeGreaterThan(0);
      docs.forEach((d, i) => {
        const s = scoresOf(d);
        expect(d.id).toBe(want[i]!.id);
        expect(d.pageContent).toBe(want[i]!.text);
        expect(round(s.score)).toBe(want[i]!.score);
        expect(s.denseScore === undefined ? undefined : round(s.denseScore)).toBe(want[i]!.denseScore);
        expect(s.keywordScore === undefined ? undefined : round(s.keywordScore)).toBe(want[i]!.keywordScore);
        // The chunk's own metadata is there unchanged, the scores under their own key only.
        const { [SCORES_KEY]: _scores, ...own } = d.metadata;
        expect(own).toEqual(want[i]!.metadata);
      });
      if (mode === 'dense') expect(docs.every((d) => !('keywordScore' in scoresOf(d)))).toBe(true);
      if (mode === 'keyword') expect(docs.every((d) => !('denseScore' in scoresOf(d)))).toBe(true);
    } finally {
      lease.release();
    }
  });

  it('composes as a Runnable (retriever.pipe) and honours a metadata filter', async () => {
    const lease = svc.service.manager.acquire();
    try {
      const all = await new GenerationRetriever(lease.generation, { k: 8, mode: 'dense' }).invoke('medicine');
      const source = all[0]!.metadata.source as string;
      const chain = new GenerationRetriever(lease.generation, { k: 8, mode: 'dense', filter: { source } }).pipe(
        RunnableLambda.from((docs: Document[]) => docs.map((d) => d.metadata.source as string)),
      );
      const sources = await chain.invoke('medicine');
      expect(sources.length).toBeGreaterThan(0);
      expect(new Set(sources)).toEqual(new Set([source]));
      expect(all.some((d) => d.metadata.source !== source)).toBe(true); // the filter did remove something
    } finally {
      lease.release();
    }
  });
});
