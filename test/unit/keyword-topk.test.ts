import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import MiniSearch from 'minisearch';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { splitSentences } from '../../src/rag/extractive-answerer.js';
import { analyzeTerm, KEYWORD_ANALYSIS, KeywordIndex } from '../../src/store/keyword-index.js';
import { topKSearch } from '../../src/store/keyword-topk.js';
import { ROOT } from '../helpers/harness.js';

/** The typed-array top-k must give MiniSearch's own ranking and scores on a real corpus. */
describe('keyword top-k (MiniSearch scoring without per-match objects)', () => {
  it('returns the same ids and scores as MiniSearch search() for 60 questions', async () => {
    const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
    const sentences = documents.flatMap((d) => splitSentences(d.pageContent));
    let seed = 3;
    const r = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed / 0x7fffffff);
    const docs = Array.from({ length: 2000 }, (_, i) => ({
      id: `d${i}`,
      text: `${sentences[Math.floor(r() * sentences.length)]} ${sentences[Math.floor(r() * sentences.length)]}`,
      ...(i % 3 === 0 ? { title: sentences[Math.floor(r() * sentences.length)]!.slice(0, 40) } : {}),
    }));
    const index = KeywordIndex.build(docs);
    const mini = (index as unknown as { mini: MiniSearch }).mini;
    const options = { boost: { title: 1.5 } };
    let compared = 0;
    for (let q = 0; q < 60; q++) {
      // KeywordIndex.search passes distinct terms (prune), as here.
      // ... already analysed (stemmed, stop words out), as KeywordIndex.search does before either path.
      const raw = sentences[Math.floor(r() * sentences.length)]!.toLowerCase().match(/[a-z0-9]+/g)!;
      const words = [...new Set(raw.map((w) => analyzeTerm(w, KEYWORD_ANALYSIS)).filter((t): t is string => !!t))].slice(0, 6);
      if (words.length === 0) continue;
      const same = (t: string) => t;
      const slow = mini.search(words.join(' '), { ...options, prefix: false, fuzzy: false, combineWith: 'OR', tokenize: (s: string) => s.split(' '), processTerm: same }).slice(0, 20);
      const fast = topKSearch(mini, words, 20, { ...options, processTerm: same });
      expect(fast).not.toBeNull();
      expect(fast!.length).toBe(slow.length);
      fast!.forEach((h, i) => {
        expect(h.score).toBeCloseTo(slow[i]!.score, 6);
        // Equal scores may come in another order; distinct ones must not.
        if (i + 1 < slow.length && Math.abs(slow[i]!.score - slow[i + 1]!.score) > 1e-9 && (i === 0 || Math.abs(slow[i]!.score - slow[i - 1]!.score) > 1e-9)) expect(h.id).toBe(String(slow[i]!.id));
      });
      compared += fast!.length;
    }
    expect(compared).toBeGreaterThan(500);
  });

  it('declines what it does not implement (prefix, fuzzy, AND), so the caller falls back', () => {
    const mini = new MiniSearch({ fields: ['text'] });
    mini.add({ id: 1, text: 'a b' });
    expect(topKSearch(mini, ['a'], 5, { prefix: true })).toBeNull();
    expect(topKSearch(mini, ['a'], 5, { fuzzy: 0.2 })).toBeNull();
    expect(topKSearch(mini, ['a'], 5, { combineWith: 'AND' })).toBeNull();
    expect(topKSearch(mini, ['a'], 5, {})).toEqual([{ id: '1', score: expect.any(Number) }]);
  });
});
