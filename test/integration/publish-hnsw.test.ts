import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { createCollectionWithRecords } from '../../src/store/chroma-store.js';
import { MANIFEST_FILE } from '../../src/store/manifest.js';
import { FIXTURES, publishDocs, tempDir } from '../helpers/harness.js';

/**
 * The publisher has Chroma write its HNSW index once, whole, at the last add (sync_threshold =
 * the chunk count): no record is left in Chroma's log for every loader to apply to the index on
 * its first call (~150 ms of a loader child's CPU per swap at 10k with 785 left over). With
 * Chroma's default (a write every 1,000 records, the index updated every 100) this version of 8 chunks had no index files at
 * all, only the log. A bigger store keeps Chroma's threshold (1,000: the log is emptied as it goes,
 * and chroma.sqlite3 stays small) and its last add holds at least that many records.
 */

/** Elements in a vector segment's index (header.bin: a u32 version, two u64s, then cur_element_count as a u64). */
async function indexCount(segmentDir: string): Promise<number> {
  return Number((await readFile(join(segmentDir, 'header.bin'))).readBigUInt64LE(20));
}
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
    // Every chunk is in the written index (9,216 of 10,000 in a store published with the default).
    expect(await indexCount(join(r.dir, index[0]!.split('/')[0]!))).toBe(manifest.chunkCount);
  }, 120_000);

  it('2,345 records added in batches of 512 with threshold 1,000: the adds are 512, 512 and 1,321, and the index holds all 2,345', async () => {
    const dir = await tempDir('rag-t-hnsw-');
    dirs.push(dir);
    const server = new ChromaServer({ dataDir: dir.dir, logger: createSilentLogger(), restart: false });
    await server.start();
    const adds: number[] = [];
    try {
      const records = Array.from({ length: 2345 }, (_, i) => ({ id: `r${i}`, text: `record ${i}`, embedding: [Math.sin(i), Math.cos(i), (i % 7) / 7], metadata: { i } }));
      const batches = Array.from({ length: Math.ceil(records.length / 512) }, (_, b) => records.slice(b * 512, b * 512 + 512));
      let before = 0;
      const total = await createCollectionWithRecords({ url: server.url, collection: 'held', records: batches, syncThreshold: 1000, onBatch: (n) => (adds.push(n - before), (before = n)) });
      expect(total).toBe(2345);
    } finally {
      await server.stop();
    }
    expect(adds).toEqual([512, 512, 1321]);
    const segments = (await readdir(dir.dir, { withFileTypes: true })).filter((e) => e.isDirectory());
    expect(segments).toHaveLength(1);
    expect(await indexCount(join(dir.dir, segments[0]!.name))).toBe(2345);
  }, 120_000);
});
