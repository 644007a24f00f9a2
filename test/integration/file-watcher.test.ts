/**
 * The file watcher on a real folder (real inotify events): an ordinary write settles only after
 * the files have kept still for stabilityMs; a versioned store's pointer flip (a commit file,
 * replaced by rename) settles at once; writes that follow a commit are settled too, never missed.
 */
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { FileWatcher, WatchEvents } from '../../src/watch/file-watcher.js';

const STABILITY_MS = 1500;
let cleanup: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function watched(): Promise<{ root: string; current: string; watcher: FileWatcher; settles: number[] }> {
  const root = await mkdtemp(join(tmpdir(), 'rag-watch-'));
  await mkdir(join(root, 'versions'));
  const current = join(root, 'CURRENT');
  const watcher = new FileWatcher({ roots: [root], logger: createSilentLogger(), debounceMs: 100, stabilityMs: STABILITY_MS, polling: false, rescanMs: 0, commitFiles: [current] });
  return { root, current, watcher, settles: await started(watcher, root) };
}

/** `watcher` started, its settles' times recorded; closed and `dir` removed after the test. */
async function started(watcher: FileWatcher, dir: string): Promise<number[]> {
  const settles: number[] = [];
  watcher.on(WatchEvents.settled, () => settles.push(performance.now()));
  await watcher.start();
  cleanup.push(async () => {
    await watcher.close();
    await rm(dir, { recursive: true, force: true });
  });
  return settles;
}

/** A root folder `vectorstore` with one file, watched with short waits and a rescan every 200 ms. */
async function watchedRoot(prefix: string): Promise<{ parent: string; root: string; watcher: FileWatcher; settles: number[] }> {
  const parent = await mkdtemp(join(tmpdir(), prefix));
  const root = join(parent, 'vectorstore');
  await mkdir(root);
  await writeFile(join(root, 'a.bin'), 'a');
  const watcher = new FileWatcher({ roots: [root], logger: createSilentLogger(), debounceMs: 50, stabilityMs: 50, polling: false, rescanMs: 200 });
  return { parent, root, watcher, settles: await started(watcher, parent) };
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Publish like the ingest CLI: the version's files, then CURRENT replaced by rename. */
async function publish(root: string, name: string): Promise<number> {
  await mkdir(join(root, 'versions', name));
  await writeFile(join(root, 'versions', name, 'data.bin'), name.repeat(1000));
  await writeFile(join(root, 'CURRENT.tmp'), `${name}\n`);
  await rename(join(root, 'CURRENT.tmp'), join(root, 'CURRENT'));
  return performance.now();
}

describe('file watcher', () => {
  it('settles an ordinary write only after the files kept still for stabilityMs', async () => {
    const { root, settles } = await watched();
    await writeFile(join(root, 'chroma.sqlite3'), 'x'.repeat(1000));
    const written = performance.now();
    await until(() => settles.length === 1);
    expect(settles[0]! - written).toBeGreaterThanOrEqual(STABILITY_MS);
  });

  it('settles a pointer flip (commit file) without the stability wait', async () => {
    const { root, settles } = await watched();
    const flipped = await publish(root, 'v1');
    await until(() => settles.length >= 1);
    expect(settles[0]! - flipped).toBeLessThan(STABILITY_MS / 2);
  });

  it('settles writes that follow a pointer flip (never missed)', async () => {
    const { root, settles } = await watched();
    await publish(root, 'v1');
    // A writer that flipped the pointer too early keeps writing the version.
    await writeFile(join(root, 'versions', 'v1', 'late.bin'), 'late');
    const late = performance.now();
    // Fails (times out) if no settle comes after the late write.
    await until(() => settles.length >= 1 && settles.at(-1)! > late);
  });
});

describe('file watcher activity', () => {
  it('signals activity once at the first event of a burst, long before it settles, and again for the next burst', async () => {
    const { root, watcher, settles } = await watched();
    const activity: number[] = [];
    watcher.on(WatchEvents.activity, ({ root: r }: { root: string }) => {
      expect(r).toBe(root);
      activity.push(performance.now());
    });
    const first = performance.now();
    for (let i = 0; i < 5; i++) await writeFile(join(root, `f${i}.bin`), 'x'.repeat(100));
    await until(() => activity.length === 1);
    expect(activity[0]! - first).toBeLessThan(STABILITY_MS / 2);
    await until(() => settles.length === 1);
    expect(activity).toHaveLength(1);
    await writeFile(join(root, 'again.bin'), 'y');
    await until(() => activity.length === 2);
    await until(() => settles.length === 2);
    expect(activity).toHaveLength(2);
  });

  it('watches a folder replaced under its name (`mv new vectorstore`) again: its later changes arrive as events, not only through the rescan', async () => {
    const { parent, root, watcher, settles } = await watchedRoot('rag-watch-replaced-');
    // The folder replaced as `mv` does it: the old one renamed away, a new one renamed into its name.
    const next = join(parent, 'next');
    await mkdir(next);
    await writeFile(join(next, 'b.bin'), 'b');
    await rename(root, join(parent, 'old'));
    await rename(next, root);
    // The rescan notices the new folder (a settle) and watches it.
    await until(() => settles.length > 0, 5_000);
    await new Promise((r) => setTimeout(r, 500));
    // A change inside it now comes as a file system event (before the fix: none ever did, for this folder).
    const before = watcher.fsEventsSeen;
    await writeFile(join(root, 'c.bin'), 'c');
    await until(() => watcher.fsEventsSeen > before, 3_000);
    // And a change undone within one rescan interval is still seen (the rescan alone compares only with the last settle).
    const settled = settles.length;
    await mkdir(join(root, 'newer'));
    await writeFile(join(root, 'newer', 'x.bin'), 'x');
    await until(() => settles.length > settled, 3_000);
  });

  it('watches a folder deleted and created again under its name: its later changes arrive as events, and the rescan adds it once', async () => {
    const { parent, root, watcher, settles } = await watchedRoot('rag-watch-recreated-');
    const adds: string[] = [];
    const internal = watcher as unknown as { watcher: { add(p: string): unknown } };
    const add = internal.watcher.add.bind(internal.watcher);
    internal.watcher.add = (p: string) => {
      adds.push(p);
      return add(p);
    };
    // The folder that will take its name made first, so that it cannot reuse the deleted one's inode.
    const next = join(parent, 'next');
    await mkdir(next);
    await writeFile(join(next, 'b.bin'), 'b');
    await rm(root, { recursive: true });
    await until(() => settles.length > 0, 5_000);
    // Created again under the old name (a new inode), seen by the rescan only.
    await rename(next, root);
    await until(() => adds.length > 0, 5_000);
    await new Promise((r) => setTimeout(r, 600));
    // Watched again once (before: once as a lost root come back, and again as a root with a new inode).
    expect(adds).toEqual([root]);
    const before = watcher.fsEventsSeen;
    await writeFile(join(root, 'c.bin'), 'c');
    await until(() => watcher.fsEventsSeen > before, 3_000);
    const settled = settles.length;
    await writeFile(join(root, 'd.bin'), 'd');
    await until(() => settles.length > settled, 3_000);
  });
});
