import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { contract } from '../helpers/contract.js';
import { FIXTURES, getJson, listHugeSparseFile, publishDocs, startTestService, tempDir, waitFor, type TestService } from '../helpers/harness.js';

/**
 * The reload contract, RUNTIME_DIR and build limits: a full or read-only runtime folder (a real
 * tmpfs mounted for the test: the tests run as root), and a build phase that runs past its timeout.
 */
let svc: TestService | undefined;
const mounts: string[] = [];
afterEach(async () => {
  await svc?.stop();
  svc = undefined;
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
});

async function mountTmpfs(dir: string, options: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  mounts.push(dir);
}

describe('reload contract: RUNTIME_DIR and limits', () => {
  it('RUNTIME_DIR full: no generation is built, RAG_RUNTIME_NO_SPACE says what to do; nothing crashes', async () => {
    const { dir, cleanup } = await tempDir('rag-t-rtfull-');
    try {
      await mountTmpfs(join(dir, 'full'), 'size=64k');
      svc = await startTestService({ env: { RUNTIME_DIR: join(dir, 'full'), WATCH: 'true' } });
      const s = await getJson(`${svc.url}/admin/status`);
      expect(s.lastError.error.code).toBe('RAG_RUNTIME_NO_SPACE');
      expect(s.lastError.error.message).toMatch(/has 65536 bytes free, store .* needs \d+; free space or point RUNTIME_DIR at a bigger disk/);
      const ready = await fetch(`${svc.url}/readyz`);
      expect(ready.status).toBe(503);
      expect((await ready.json()).lastError.code).toBe('RAG_RUNTIME_NO_SPACE');
      expect(await readdir(join(dir, 'full', 'stores'))).toEqual([]); // the partial snapshot was removed
    } finally {
      await svc?.stop();
      svc = undefined;
      for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
      await cleanup();
    }
  });

  it('RUNTIME_DIR read-only: RAG_RUNTIME_NOT_WRITABLE; the service answers 503 with the reason instead of crashing', async () => {
    const { dir, cleanup } = await tempDir('rag-t-rtro-');
    try {
      await mountTmpfs(join(dir, 'ro'), 'ro,size=1m');
      svc = await startTestService({ env: { RUNTIME_DIR: join(dir, 'ro'), WATCH: 'true' } });
      const s = await getJson(`${svc.url}/admin/status`);
      expect(s.lastError.error.code).toBe('RAG_RUNTIME_NOT_WRITABLE');
      expect(s.lastError.error.message).toMatch(/not writable \(EROFS\); make it writable or point RUNTIME_DIR elsewhere/);
      const res = await fetch(`${svc.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question: 'x' }) });
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('RAG_NOT_READY');
    } finally {
      await svc?.stop();
      svc = undefined;
      for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
      await cleanup();
    }
  });

  it('a build phase past RELOAD_PHASE_TIMEOUT_MS (a 1 TiB sparse listed file): RAG_RELOAD_TIMEOUT, its half snapshot removed, still serving', async () => {
    svc = await startTestService({ env: { WATCH: 'true', RELOAD_PHASE_TIMEOUT_MS: '10000' } });
    const c = contract(() => svc!);
    const first = await c.status();
    expect(first.lastError).toBeNull();
    const serving = first.active.store.version;
    const staging = await tempDir('rag-t-huge-');
    try {
      const built = await publishDocs(join(staging.dir, 'built'), join(FIXTURES, 'docs-a'), { version: 'huge', activate: false });
      const dir = join(svc.dirs.store, 'huge');
      await cp(built.dir, dir, { recursive: true });
      await listHugeSparseFile(dir);
      await c.expectRejected(() => c.pointCurrent('huge'), 'RAG_RELOAD_TIMEOUT', /build phase "snapshot" took longer than 10000 ms/);
      await c.expectServing(serving);
      // The abandoned copy stops at its next chunk and removes its half snapshot.
      await waitFor(async () => (await readdir(join(svc!.dirs.runtime, 'stores'))).every((n) => !n.endsWith('-huge')), 10_000, 'the half snapshot to go');
    } finally {
      await staging.cleanup();
    }
  });

  it('stop() while a snapshot is being copied: the copy ends and its half snapshot is gone before stop() returns; nothing is written after', async () => {
    svc = await startTestService({ env: { WATCH: 'true', RELOAD_PHASE_TIMEOUT_MS: '600000' } });
    const c = contract(() => svc!);
    const staging = await tempDir('rag-t-huge-');
    try {
      const built = await publishDocs(join(staging.dir, 'built'), join(FIXTURES, 'docs-a'), { version: 'huge', activate: false });
      const dir = join(svc.dirs.store, 'huge');
      await cp(built.dir, dir, { recursive: true });
      await listHugeSparseFile(dir); // its copy would take many minutes
      await c.pointCurrent('huge');
      await waitFor(async () => (await c.status()).building?.phase === 'snapshot', 30_000, 'the build to be copying');
      await new Promise((r) => setTimeout(r, 300)); // well into the copy
      const runtime = svc.dirs.runtime;
      await svc.service.stop(); // the folders are deleted later, by afterEach
      const tree = async () => (await readdir(runtime, { recursive: true })).sort();
      const after = await tree();
      expect(after.filter((n) => n.includes('-huge'))).toEqual([]);
      await new Promise((r) => setTimeout(r, 300));
      expect(await tree()).toEqual(after);
    } finally {
      await staging.cleanup();
    }
  });
});
