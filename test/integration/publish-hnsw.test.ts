import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MANIFEST_FILE } from '../../src/store/manifest.js';
import { FIXTURES, publishDocs, tempDir } from '../helpers/harness.js';

/**
 * The publisher has Chroma write its HNSW index once, whole, at the last add (sync_threshold =
 * the chunk count): no record is left in Chroma's log for every loader to apply to the index on
 * its first call (~150 ms of a loader child's CPU per swap at 10k with 785 left over). With
 * Chroma's default (a write every 1,000 records, the index updated every 100) this version of 8 chunks had no index files at
 * all, only the log.
 */
const dirs: Array<{ cleanup: () => Promise<void> }> = [];
afterAll(async () => {
  for (const d of dirs) await d.cleanup();
});

describe('a published version holds its HNSW index written out', () => {
  it('its vector segment folder has the index files, listed in the manifest, for all of its chunks', async () => {
    const out = await tempDir('rag-t-hnsw-');
    dirs.push(out);
    const r = await publishDocs(out.dir, join(FIXTURES, 'docs-hybrid'), { version: 'v1', activate: false });
    const manifest = JSON.parse(await readFile(join(r.dir, MANIFEST_FILE), 'utf8')) as { chunkCount: number; files: Record<string, { size: number }> };
    expect(manifest.chunkCount).toBeGreaterThan(2);
    expect(manifest.chunkCount).toBeLessThan(1000);
    const index = Object.keys(manifest.files).filter((f) => /^[0-9a-f-]{36}\/(data_level0|header|length|link_lists)\.bin$/.test(f));
    expect(index.map((f) => f.split('/')[1]).sort()).toEqual(['data_level0.bin', 'header.bin', 'length.bin', 'link_lists.bin']);
    // header.bin records the element count hnswlib wrote (cur_element_count: a u64 at byte 20, after a u32 version and two u64s; 9,216 of 10,000 in a store published with the default).
    const header = await readFile(join(r.dir, index.find((f) => f.endsWith('header.bin'))!));
    expect(Number(header.readBigUInt64LE(20))).toBe(manifest.chunkCount);
  }, 120_000);
});
