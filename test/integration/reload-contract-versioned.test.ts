import { execFileSync } from 'node:child_process';
import { cp, open, readdir, readFile, rm, stat, symlink, unlink, writeFile, lstat, appendFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeFiles, listFiles, MANIFEST_FILE } from '../../src/store/manifest.js';
import { contract, treeHash } from '../helpers/contract.js';
import { FIXTURES, publishDocs, startTestService, tempDir, waitFor, type TestService } from '../helpers/harness.js';

/**
 * The reload contract, versioned layout (a service started on an ingest-published store with
 * CURRENT, watching its folders). One row of docs/operations.md's contract table per test.
 */
let svc: TestService;
let staging: { dir: string; cleanup: () => Promise<void> };
const c = contract(() => svc);
let serving: string;

async function stage(name: string, docs = join(FIXTURES, 'docs-a')): Promise<string> {
  return (await publishDocs(join(staging.dir, 'built'), docs, { version: name, activate: false })).dir;
}

/** Add files to a built version and list them in its manifest (a publisher shipping extra files). */
async function addListed(dir: string, write: (dir: string) => Promise<void>) {
  await write(dir);
  const manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'));
  manifest.files = await describeFiles(dir);
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2));
}

beforeAll(async () => {
  staging = await tempDir('rag-t-contract-');
  // SERVE_INDEX_MAX_MB=0: the Chroma-child path, whose private snapshot lives as long as its generation, so the
  // rows can inspect what was copied (in process, the snapshot is deleted once the index is loaded).
  svc = await startTestService({ env: { WATCH: 'true', RELOAD_REPLAY_N: '5', SERVE_INDEX_MAX_MB: '0' } });
  serving = (await c.status()).active.store.version;
});
afterAll(async () => {
  await svc?.stop();
  await staging?.cleanup();
});

describe('reload contract: versioned layout', () => {
  it('new version folder + CURRENT: served; the status says which attempt built it and how the standby compared', async () => {
    await c.query('sourdough starter flour');
    const dir = await stage('r-new');
    const before = await c.lastId();
    await cp(dir, join(svc.dirs.store, 'r-new'), { recursive: true });
    await c.pointCurrent('r-new');
    const a = await c.nextAttempt(before, 'accepted');
    await c.expectServing('r-new');
    const s = await c.status();
    expect(s.active.attempt).toBe(a.id);
    expect(s.lastSuccess.id).toBe(a.id);
    expect(s.replay.attempt).toBe(a.id);
    expect(s.replay.overlapAtK).toBeGreaterThan(0.5); // same documents: the standby answers like the active
    serving = 'r-new';
  });

  it('flat `cp -r` into ./vectorstore while CURRENT exists: rejected as ambiguous with how to fix it; removing it goes back to unchanged', async () => {
    const flat = await stage('r-flat', join(FIXTURES, 'docs-b'));
    const copied: string[] = [];
    await c.expectRejected(
      async () => {
        for (const rel of await readdir(flat)) {
          if (rel === MANIFEST_FILE) continue;
          await cp(join(flat, rel), join(svc.dirs.store, rel), { recursive: true });
          copied.push(rel);
        }
      },
      'RAG_STORE_LAYOUT_AMBIGUOUS',
      /flat store .* and a CURRENT file.*delete CURRENT/,
    );
    await c.expectServing(serving);
    const before = await c.lastId();
    for (const rel of copied) await rm(join(svc.dirs.store, rel), { recursive: true, force: true });
    const a = await c.nextAttempt(before);
    expect(a.outcome).toBe('unchanged');
    expect((await c.status()).lastError).toBeNull();
  });

  it('writes into the version being served: rejected (published versions are immutable); the snapshot keeps serving', async () => {
    const dir = join(svc.dirs.store, serving);
    const original = await readFile(join(dir, 'keyword-index.json'));
    await c.expectRejected(
      () => appendFile(join(dir, 'keyword-index.json'), ' '),
      'RAG_STORE_PUBLISHED_MODIFIED',
      /which is being served, was modified after it was published.*publish a new version folder/,
    );
    await c.expectServing(serving);
    const before = await c.lastId();
    await writeFile(join(dir, 'keyword-index.json'), original); // put the published bytes back
    expect((await c.nextAttempt(before, 'accepted')).storeVersion).toBe(serving);
  });

  it('files not listed in the manifest: never copied, shown in the status', async () => {
    const before = await c.lastId();
    await writeFile(join(svc.dirs.store, serving, 'notes.txt'), 'not part of the store');
    const a = await c.nextAttempt(before);
    expect(a.outcome).toBe('unchanged');
    const s = await c.status();
    expect(s.aspired.unlistedFiles).toContain('notes.txt');
    const snapRoot = join(svc.dirs.runtime, 'stores');
    const snap = (await readdir(snapRoot)).find((n) => n.endsWith(`-${serving}`))!;
    expect(await readdir(join(snapRoot, snap))).toContain('chroma.sqlite3');
    expect(await readdir(join(snapRoot, snap))).not.toContain('notes.txt');
  });

  it('a version folder that is a symbolic link inside the root: served from a real copy; Chroma never writes into the published files', async () => {
    const dir = await stage('r-real');
    await cp(dir, join(svc.dirs.store, 'r-real'), { recursive: true });
    await symlink('r-real', join(svc.dirs.store, 'r-link'));
    const published = await treeHash(join(svc.dirs.store, 'r-real'));
    const before = await c.lastId();
    await c.pointCurrent('r-link');
    await c.nextAttempt(before, 'accepted');
    await c.expectServing('r-link');
    await c.query('volcano eruption');
    const snapRoot = join(svc.dirs.runtime, 'stores');
    const snap = (await readdir(snapRoot)).find((n) => n.endsWith('-r-link'))!;
    for (const rel of await listFiles(join(snapRoot, snap))) expect((await lstat(join(snapRoot, snap, rel))).isSymbolicLink()).toBe(false);
    expect((await lstat(join(snapRoot, snap))).isSymbolicLink()).toBe(false);
    expect(await treeHash(join(svc.dirs.store, 'r-real'))).toBe(published);
    serving = 'r-link';
  });

  it('symbolic links leaving the root, and link loops: rejected with codes', async () => {
    const outside = await stage('r-outside');
    await symlink(outside, join(svc.dirs.store, 'r-out'));
    await c.expectRejected(() => c.pointCurrent('r-out'), 'RAG_FS_LINK_OUTSIDE_ROOT', /leaving .* copy the files in/);
    await symlink('r-loop', join(svc.dirs.store, 'r-loop'));
    await c.expectRejected(() => c.pointCurrent('r-loop'), 'RAG_FS_LINK_LOOP', /symbolic link loop/);
    await c.expectServing(serving);
  });

  it('special files (FIFO, device, socket, a link to /dev/zero) in place of a listed file: rejected before anything opens them; nothing hangs', async () => {
    const make = async (name: string, replace: (path: string) => Promise<void>) => {
      const dir = await stage(name);
      await cp(dir, join(svc.dirs.store, name), { recursive: true });
      const target = join(svc.dirs.store, name, 'keyword-index.json');
      await unlink(target);
      await replace(target);
    };
    await make('r-fifo', async (p) => void execFileSync('mkfifo', [p]));
    await c.expectRejected(() => c.pointCurrent('r-fifo'), 'RAG_FS_SPECIAL_FILE', /keyword-index.json is a FIFO/);
    await c.expectServing(serving); // the loop is not blocked: queries still answer
    await make('r-dev', async (p) => void execFileSync('mknod', [p, 'c', '1', '5']));
    await c.expectRejected(() => c.pointCurrent('r-dev'), 'RAG_FS_SPECIAL_FILE', /keyword-index.json is a character device/);
    const sock = createServer();
    await make('r-sock', (p) => new Promise<void>((r) => sock.listen(p, () => r())));
    await c.expectRejected(() => c.pointCurrent('r-sock'), 'RAG_FS_SPECIAL_FILE', /keyword-index.json is a socket/);
    // The socket stays open until CURRENT has moved on: closing it unlinks the file, a change the watcher
    // would answer with another attempt on r-sock (RAG_STORE_FILE_MISSING) racing the next expectation.
    await make('r-zero', (p) => symlink('/dev/zero', p));
    await c.expectRejected(() => c.pointCurrent('r-zero'), 'RAG_FS_LINK_OUTSIDE_ROOT', /keyword-index.json is a symbolic link leaving/);
    // A later good version is still served (nothing froze the reload loop).
    const good = await stage('r-after-special');
    const before = await c.lastId();
    await cp(good, join(svc.dirs.store, 'r-after-special'), { recursive: true });
    await c.pointCurrent('r-after-special');
    await c.nextAttempt(before, 'accepted');
    await c.expectServing('r-after-special');
    serving = 'r-after-special';
    await new Promise<void>((r) => sock.close(() => r()));
  });

  it('a very large sparse file listed in the manifest: served, and its snapshot copy stays sparse', async () => {
    const dir = await stage('r-sparse');
    await addListed(dir, async (d) => {
      const fh = await open(join(d, 'big.bin'), 'w');
      await fh.write(Buffer.from('end'), 0, 3, 256 * 1024 * 1024);
      await fh.close();
    });
    const before = await c.lastId();
    await cp(dir, join(svc.dirs.store, 'r-sparse'), { recursive: true });
    await c.pointCurrent('r-sparse');
    await c.nextAttempt(before, 'accepted', 60_000);
    await c.expectServing('r-sparse');
    const snapRoot = join(svc.dirs.runtime, 'stores');
    const snap = (await readdir(snapRoot)).find((n) => n.endsWith('-r-sparse'))!;
    const s = await stat(join(snapRoot, snap, 'big.bin'));
    expect(s.size).toBe(256 * 1024 * 1024 + 3);
    expect(s.blocks * 512).toBeLessThan(1024 * 1024);
    serving = 'r-sparse';
  });

  it('only the tokenizer or config of the model changed: the model is reloaded (content-complete change detection)', async () => {
    const before = await c.lastId();
    const loadedAt = (await c.status()).active.model.loadedAt;
    const cfgPath = join(svc.dirs.models, 'glove-sif-100d', 'config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    cfg.note = 'changed only config.json';
    await writeFile(cfgPath, JSON.stringify(cfg));
    await c.nextAttempt(before, 'accepted');
    const after = (await c.status()).active.model.loadedAt;
    expect(after).not.toBe(loadedAt);
    const before2 = await c.lastId();
    await appendFile(join(svc.dirs.models, 'glove-sif-100d', 'tokenizer.json'), '\n');
    await c.nextAttempt(before2, 'accepted');
    expect((await c.status()).active.model.loadedAt).not.toBe(after);
    await c.expectServing(serving);
  });

  it('the served version folder deleted: rejected (CURRENT names a missing folder); the snapshot keeps serving', async () => {
    // `rm -r` is not atomic: on a loaded machine the watcher can settle on the half-deleted folder
    // first (rejected as RAG_STORE_FILE_MISSING, or another store error, also right for that
    // moment); the deleted folder's own verdict follows.
    const before = await c.lastId();
    await rm(join(svc.dirs.store, serving), { recursive: true, force: true });
    type Attempt = { id: number; outcome: string; error: { code: string; message: string } };
    const attempt: Attempt = await waitFor(async () => ((await c.status()).history as Attempt[]).find((a) => a.id > before && a.outcome === 'rejected' && a.error.code === 'RAG_STORE_NOT_FOUND'), 30_000, 'the rejection of the deleted folder');
    expect(attempt.error.message).toMatch(/does not exist/);
    // Nothing in between was served: every attempt since the rm was refused with a store error, or
    // superseded / found unchanged while the folder was still going (seen once in CI: an attempt that
    // was neither of the two rejections; what it was is printed if it happens again).
    const since = ((await c.status()).history as Attempt[]).filter((a) => a.id > before);
    const unexpected = since.filter((a) => !(a.outcome === 'rejected' ? /^RAG_STORE_/.test(a.error.code) : ['superseded', 'unchanged'].includes(a.outcome)));
    expect(unexpected, JSON.stringify(unexpected)).toEqual([]);
    await c.expectServing(serving);
    expect((await c.status()).ready).toBe(true);
  });

  it("a store's own acceptance.json (listed in its manifest): the standby is checked before the swap; below minRecall it is rejected", async () => {
    const good = await stage('r-accept');
    await addListed(good, (d) =>
      writeFile(join(d, 'acceptance.json'), JSON.stringify({ k: 3, minRecall: 0.9, questions: [{ question: 'lighthouse keeper lens', expected: ['lighthouses.md'] }, { question: 'sourdough bread yeast', expected: ['bread.txt'] }] })),
    );
    const before = await c.lastId();
    await cp(good, join(svc.dirs.store, 'r-accept'), { recursive: true });
    await c.pointCurrent('r-accept');
    const a = await c.nextAttempt(before, 'accepted');
    const s = await c.status();
    expect(s.acceptance).toMatchObject({ attempt: a.id, k: 3, minRecall: 0.9, recall: 1, questions: 2 });
    serving = 'r-accept';
    const bad = await stage('r-accept-bad');
    await addListed(bad, (d) =>
      writeFile(join(d, 'acceptance.json'), JSON.stringify({ minRecall: 0.5, questions: [{ question: 'lighthouse keeper lens', expected: ['not-in-this-store.md'] }] })),
    );
    await cp(bad, join(svc.dirs.store, 'r-accept-bad'), { recursive: true });
    await c.expectRejected(() => c.pointCurrent('r-accept-bad'), 'RAG_STORE_ACCEPTANCE_FAILED', /fails its own acceptance.json: recall@5 0 is below the minimum 0.5 over 1 questions/);
    await c.expectServing('r-accept');
  });

  it('several store folders, no CURRENT, one without a manifest: rejected as ambiguous ("write the name into CURRENT")', async () => {
    const dir = await stage('r-nomanifest');
    await cp(dir, join(svc.dirs.store, 'r-nomanifest'), { recursive: true });
    await rm(join(svc.dirs.store, 'r-nomanifest', MANIFEST_FILE));
    await c.expectRejected(() => rm(join(svc.dirs.store, 'CURRENT')), 'RAG_STORE_LAYOUT_AMBIGUOUS', /r-nomanifest has no valid manifest.json.*write the name of the one to serve into CURRENT/);
    await c.expectServing(serving);
  });
});
