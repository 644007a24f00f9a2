import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { listFiles } from '../../src/store/manifest.js';
import { getJson, postJson, waitFor, type TestService } from './harness.js';

/** Helpers for the reload contract tests (docs/operations.md, "The reload contract"). */
export function contract(svc: () => TestService) {
  const status = () => getJson(`${svc().url}/admin/status`);
  const lastId = async (): Promise<number> => (await status()).history[0]?.id ?? 0;
  /** The next attempt after `afterId` (with this outcome, if given). */
  const nextAttempt = async (afterId: number, outcome?: string, timeoutMs = 30_000) => {
    try {
      return await waitFor(async () => {
        const s = await status();
        return s.history.find((a: { id: number; outcome: string }) => a.id > afterId && (!outcome || a.outcome === outcome));
      }, timeoutMs, `a reload attempt after #${afterId}${outcome ? ` with outcome ${outcome}` : ''}`);
    } catch (err) {
      // Where it stands (a stuck resolution, a queue, a watcher that saw nothing) says where to look.
      const s = await status().catch(() => null);
      const where = s && { state: s.state, reloading: s.reloading, queued: s.queued, building: s.building, aspired: s.aspired, waiting: s.waiting, watcher: s.watcher, history: s.history.slice(0, 3) };
      throw new Error(`${(err as Error).message}; status: ${JSON.stringify(where)}`, { cause: err });
    }
  };
  const query = (question = 'lighthouse lens keeper') => postJson(`${svc().url}/v1/query`, { question, k: 2 });
  /** The old generation keeps serving: a real query answers 200 from this version. */
  const expectServing = async (version: string) => {
    const res = await query();
    expect(res.status).toBe(200);
    expect(res.body.generation.storeVersion).toBe(version);
    expect(res.body.sources.length).toBeGreaterThan(0);
  };
  const expectRejected = async (trigger: () => Promise<void>, code: string, message: RegExp) => {
    const before = await lastId();
    await trigger();
    const attempt = await nextAttempt(before, 'rejected');
    expect(attempt.error.code).toBe(code);
    expect(attempt.error.message).toMatch(message);
    const s = await status();
    expect(s.lastError.id).toBe(attempt.id);
    return attempt;
  };
  const pointCurrent = async (name: string) => {
    await writeFile(join(svc().dirs.store, 'CURRENT.tmp'), `${name}\n`);
    await rename(join(svc().dirs.store, 'CURRENT.tmp'), join(svc().dirs.store, 'CURRENT'));
  };
  return { status, lastId, nextAttempt, query, expectServing, expectRejected, pointCurrent };
}

/** sha256 of every file in a folder: proves nothing wrote into published files. */
export async function treeHash(dir: string): Promise<string> {
  const h = createHash('sha256');
  for (const rel of await listFiles(dir)) h.update(rel).update(await readFile(join(dir, rel)));
  return h.digest('hex');
}
