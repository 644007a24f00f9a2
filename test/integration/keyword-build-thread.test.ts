import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildKeywordText } from '../../src/ingest/keyword-build.js';
import { keywordDocs } from '../../src/ingest/keyword-docs.js';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { splitDocuments, type Chunk } from '../../src/ingest/split-documents.js';
import { KEYWORD_ANALYSIS } from '../../src/store/keyword-analysis.js';
import { KEYWORD_INDEX_FILE, KeywordIndex } from '../../src/store/keyword-index.js';
import { FIXTURES, publishDocs, tempDir } from '../helpers/harness.js';

/**
 * The publisher builds a version's keyword index on a thread of its own (keyword-build.ts): a
 * document change from the console publishes inside the service, and built on its event loop the
 * index held it for ~0.4 s at 3,000 chunks (bench/results/swaps-2026-12-06-s20.md). The index it
 * ships must be byte for byte the one the event loop would have built.
 */
let chunks: Chunk[];
let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('rag-t-kwthread-');
  const { documents } = await loadDocuments(join(FIXTURES, 'docs-a'));
  chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await tmp?.cleanup();
});

describe('the keyword index of a published version is built off the event loop', () => {
  it('buildKeywordText gives the text KeywordIndex.build gives here, for the default and a custom analysis', async () => {
    const here = KeywordIndex.build(keywordDocs(chunks));
    expect(await buildKeywordText(chunks)).toEqual({ text: here.serialize(), size: here.size });
    const custom = { ...KEYWORD_ANALYSIS, fieldBoosts: { ...KEYWORD_ANALYSIS.fieldBoosts, neighbours: 0.3 } };
    const hereCustom = KeywordIndex.build(keywordDocs(chunks), 'built', custom);
    const there = await buildKeywordText(chunks, custom);
    expect(there.text).toBe(hereCustom.serialize());
    expect(there.text).not.toBe(here.serialize()); // the analysis reached the thread
  });

  it('publishStoreVersion never builds it on the calling thread, and ships the same bytes', async () => {
    const spy = vi.spyOn(KeywordIndex, 'build');
    const published = await publishDocs(join(tmp.dir, 'store'), join(FIXTURES, 'docs-a'), { version: 'kw1' });
    expect(spy).not.toHaveBeenCalled();
    spy.mockRestore();
    const shipped = await readFile(join(published.dir, KEYWORD_INDEX_FILE), 'utf8');
    expect(shipped).toBe(KeywordIndex.build(keywordDocs(chunks)).serialize());
  });
});
