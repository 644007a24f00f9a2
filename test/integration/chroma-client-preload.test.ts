import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { chromaClientLoaded } from '../../src/store/chroma-store.js';
import { FIXTURES, getJson, ROOT, startTestService, type TestService } from '../helpers/harness.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist', 'src', 'ingest', 'cli.js');

/**
 * The chromadb client library (a synchronous require of ~30-40 ms) is loaded before the service
 * serves, even when its first version needs no Chroma server: else the first swap to a version read
 * through Chroma would load it on the event loop while requests are served. The version is
 * published by the ingest CLI in a process of its own, so that nothing in this file's module graph
 * has loaded the library before the service starts.
 */
let svc: TestService | undefined;
afterAll(async () => {
  await svc?.stop();
});

describe('the chromadb client library', () => {
  it('is loaded before the service serves a first version read from its serving-index.bin', async () => {
    expect(chromaClientLoaded()).toBe(false);
    svc = await startTestService({
      store: false,
      env: { SERVE_INDEX_CACHE: 'false' },
      prepare: async (dirs) => {
        await run(process.execPath, [CLI, join(FIXTURES, 'docs-a'), '--out', dirs.store, '--models-dir', dirs.models, '--chunk-size', '300', '--chunk-overlap', '30', '--quiet'], { cwd: ROOT });
      },
    });
    const status = await getJson(`${svc.url}/admin/status`);
    // The first generation needed no Chroma server, and the library is loaded all the same.
    expect(status.active.store.backend.loadedFrom).toBe('serving-index');
    expect(chromaClientLoaded()).toBe(true);
  }, 120_000);
});
