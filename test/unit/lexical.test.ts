import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Document } from '@langchain/core/documents';
import { describe, expect, it } from 'vitest';
import { markdownSections, splitDocuments } from '../../src/ingest/split-documents.js';
import { analyze, KEYWORD_INDEX_FILE, KeywordIndex, tokenize } from '../../src/store/keyword-index.js';

/** The grammar tokenize() implements by character code, as a regex (its first form): the reference. */
function regexTokens(text: string): string[] {
  const out: string[] = [];
  for (const m of text.toLowerCase().matchAll(/[a-z0-9]+(?:[-_.][a-z0-9]+)*/g)) {
    out.push(m[0]);
    if (/[-_.]/.test(m[0])) out.push(...m[0].split(/[-_.]+/).filter(Boolean));
  }
  return out;
}

/** A seeded xorshift generator (the same strings every run). */
function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

describe('keyword analysis (one exported config: KEYWORD_ANALYSIS)', () => {
  it.each([
    ['inflections meet at one stem', 'leases leasing leased', ['leas', 'leas', 'leas']],
    ['identifiers stay whole beside their stemmed parts', 'HQ_LEASES_EXPIRED_TOTAL', ['hq_leases_expired_total', 'hq', 'leas', 'expir', 'total']],
    ['stop words go', 'how do I pause the queue', ['paus', 'queue']],
    ['numbers and short words are not stemmed', 'v3 ran 404 errors', ['v3', 'ran', '404', 'error']],
  ])('%s', (_name, text, want) => {
    expect(analyze(text)).toEqual(want);
  });

  it.each([
    ['separators join runs only between letters or digits', 'a--b a.b. .a _x_ --visibility-timeout v1.2.3', ['a', 'b', 'a.b', 'a', 'b', 'a', 'x', 'visibility-timeout', 'visibility', 'timeout', 'v1.2.3', 'v1', '2', '3']],
    ['upper case and the characters whose lower case is ASCII', 'HQ-E1042 \u212Aelvin \u0130stanbul', ['hq-e1042', 'hq', 'e1042', 'kelvin', 'i', 'stanbul']],
    ['nothing to index', ' \u00e9\u00e8 -_. \ud83d\ude00 ', []],
  ])('tokenize: %s', (_name, text, want) => {
    expect(tokenize(text)).toEqual(want);
    expect(regexTokens(text)).toEqual(want);
  });

  it('tokenize gives the regex grammar\'s tokens on 3,000 random strings', () => {
    const alphabet = ['a', 'z', 'q', 'A', 'Z', '0', '9', '-', '_', '.', ' ', '\n', '/', '\u0130', '\u212A', '\u00e9', '\u03a3', '\ud83d\ude00', '\ud83d', '\u0000'];
    const random = seeded(20261206);
    for (let n = 0; n < 3000; n++) {
      const length = Math.floor(random() * 40);
      const text = Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]!).join('');
      expect(tokenize(text), JSON.stringify(text)).toEqual(regexTokens(text));
    }
  });

  it('a query in other inflections finds the chunk', () => {
    const index = KeywordIndex.build([
      { id: 'a', text: 'Workers renew their leases while a job is running.' },
      { id: 'b', text: 'The scheduler enqueues missed runs.' },
      { id: 'c', text: 'Backups are copied off the machine.' },
      // Enough other chunks that no query term is in more than 15% of them (pruned as too common).
      ...Array.from({ length: 12 }, (_, i) => ({ id: `f${i}`, text: `Filler paragraph number ${i} about colours and weather.` })),
    ]);
    expect(index.search('how does leasing work for a running job', 3)[0]?.id).toBe('a');
  });

  it('a shipped index of the previous format is not used (null: the store texts are indexed afresh); a bad analysis block is corrupt', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rag-t-kw-'));
    try {
      await writeFile(join(dir, KEYWORD_INDEX_FILE), JSON.stringify({ format: 2, df: {}, index: {} }));
      expect(await KeywordIndex.load(dir)).toBeNull();
      const good = JSON.parse(KeywordIndex.build([{ id: 'a', text: 'hello world' }]).serialize()) as Record<string, unknown>;
      await writeFile(join(dir, KEYWORD_INDEX_FILE), JSON.stringify({ ...good, analysis: { stem: 'yes' } }));
      await expect(KeywordIndex.load(dir)).rejects.toMatchObject({ code: 'RAG_STORE_KEYWORD_INDEX_CORRUPT' });
      await writeFile(join(dir, KEYWORD_INDEX_FILE), JSON.stringify(good));
      expect((await KeywordIndex.load(dir))?.search('worlds', 1)[0]?.id).toBe('a');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Markdown chunking by heading sections', () => {
  const md = ['# Guide', '', 'Intro text.', '', '## Install', '### From source', '', 'Run make.', '', '```sh', '# not a heading', '```', '', '## Use', '', 'Call it.'].join('\n');

  it('cuts at headings (not inside code fences), keeps the heading path, joins a bare heading to the next section', () => {
    expect(markdownSections(md).map((s) => [s.path.join(' > '), s.text.trim().split('\n')[0]])).toEqual([
      ['Guide', '# Guide'],
      ['Guide > Install > From source', '## Install'],
      ['Guide > Use', '## Use'],
    ]);
  });

  it('chunks carry the heading path in metadata and never span two sections', async () => {
    const chunks = await splitDocuments([new Document({ pageContent: md, metadata: { source: 'g.md', title: 'Guide', type: 'md' } })], { chunkSize: 400, chunkOverlap: 0 });
    expect(chunks.map((c) => [c.id, c.metadata.headings])).toEqual([
      ['g.md#0', 'Guide'],
      ['g.md#1', 'Guide > Install > From source'],
      ['g.md#2', 'Guide > Use'],
    ]);
    expect(chunks[1]!.text).toContain('# not a heading');
  });
});
