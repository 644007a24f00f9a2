import { cp, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFiles } from '../../src/store/manifest.js';
import { FIXTURES, getJson, postJson, publishDocs, startTestService, tempDir, waitFor, writeEditionDocs, type TestService } from '../helpers/harness.js';

/** Copy a built store's files over ./vectorstore in place (no manifest), slowly, like cp -r or rsync would. */
async function slowCopyInPlace(src: string, dst: string, pauseMs: number) {
  for (const rel of await listFiles(src)) {
    if (rel === 'manifest.json') continue;
    await mkdir(join(dst, rel, '..'), { recursive: true });
    const buf = await readFile(join(src, rel));
    const fh = await open(join(dst, rel), 'w');
    const parts = 4;
    const step = Math.ceil(buf.length / parts);
    for (let off = 0; off < buf.length; off += step) {
      await fh.write(buf, off, Math.min(step, buf.length - off), off);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
    await fh.close();
  }
}

describe('a store copied in place over the old files (flat layout, e.g. Python LangChain persist_directory)', () => {
  let svc: TestService;
  let staging: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    staging = await tempDir('rag-t-inplace-');
    const first = await publishDocs(join(staging.dir, 'built'), await writeEditionDocs(staging.dir, 1), { version: 'e1', activate: false });
    svc = await startTestService({
      env: { WATCH: 'true' },
      store: false,
      prepare: async (dirs) => {
        await mkdir(dirs.store, { recursive: true });
        for (const rel of await listFiles(first.dir)) {
          if (rel !== 'manifest.json') await cp(join(first.dir, rel), join(dirs.store, rel), { recursive: true });
        }
      },
    });
  });
  afterAll(async () => {
    await svc?.stop();
    await staging?.cleanup();
  });

  it('never serves half-copied files, never fails a request, and serves the new store once the copy settles', async () => {
    const initial = (await getJson(`${svc.url}/admin/status`)).active.store.version;
    expect(initial).toMatch(/^inplace-/);
    const second = await publishDocs(join(staging.dir, 'built'), await writeEditionDocs(staging.dir, 2), { version: 'e2', activate: false });

    const seen: Array<{ status: number; editions: number[] }> = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse keeper sourdough', k: 2 });
        seen.push({ status: res.status, editions: (res.body.sources ?? []).map((s: { metadata: { source: string } }) => Number(/^e(\d+)-/.exec(s.metadata.source)?.[1])) });
      }
    };
    const workers = [worker(), worker()];
    // 100 ms pauses: longer than WATCH_STABILITY_MS (150) only across several writes, so some
    // reloads may start mid-copy; they must be rejected, never served.
    await slowCopyInPlace(second.dir, svc.dirs.store, 100);
    await waitFor(async () => {
      const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse keeper', k: 2 });
      return res.body.sources?.every((s: { metadata: { source: string } }) => s.metadata.source.startsWith('e2-'));
    }, 20_000, 'the copied-in store to be served');
    stop = true;
    await Promise.all(workers);

    expect(seen.filter((s) => s.status !== 200)).toEqual([]);
    for (const s of seen) expect(new Set(s.editions).size).toBe(1); // never mixed
    const status = await getJson(`${svc.url}/admin/status`);
    expect(status.active.store.version).not.toBe(initial);
    expect(status.active.store.kind).toBe('flat');
  });
});
