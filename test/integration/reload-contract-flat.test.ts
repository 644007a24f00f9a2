import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_FILE } from '../../src/store/manifest.js';
import { requireTool } from '../helpers/system-tools.js';
import { contract } from '../helpers/contract.js';
import { publishDocs, startTestService, tempDir, writeEditionDocs, type TestService } from '../helpers/harness.js';

/**
 * The reload contract, flat layout (chroma.sqlite3 at the top of ./vectorstore, no manifest, as
 * Python LangChain's persist_directory or a `cp -r` leaves it). One row of the table per test.
 */
let svc: TestService;
let staging: { dir: string; cleanup: () => Promise<void> };
const c = contract(() => svc);
let edition = 1;

/** A built store's files without the manifest (a plain Chroma persist folder), in staging. */
async function flatStore(): Promise<{ dir: string; n: number }> {
  const n = ++edition;
  const built = await publishDocs(join(staging.dir, 'built'), await writeEditionDocs(staging.dir, n), { version: `e${n}`, activate: false });
  const dir = join(staging.dir, `flat-${n}`);
  await mkdir(dir, { recursive: true });
  for (const rel of await readdir(built.dir)) if (rel !== MANIFEST_FILE) await cp(join(built.dir, rel), join(dir, rel), { recursive: true });
  return { dir, n };
}

async function servedEdition(): Promise<number> {
  const res = await c.query('lighthouse keeper');
  expect(res.status).toBe(200);
  return Number(/^e(\d+)-/.exec(res.body.sources[0].metadata.source)?.[1]);
}

async function expectServedAfter(before: number, n: number) {
  await c.nextAttempt(before, 'accepted');
  expect(await servedEdition()).toBe(n);
  const s = await c.status();
  expect(s.active.store.kind).toBe('flat');
}

beforeAll(async () => {
  staging = await tempDir('rag-t-flat-');
  const first = await flatStore();
  svc = await startTestService({
    env: { WATCH: 'true' },
    store: false,
    prepare: async (dirs) => {
      await mkdir(dirs.store, { recursive: true });
      await cp(first.dir, dirs.store, { recursive: true });
    },
  });
});
afterAll(async () => {
  await svc?.stop();
  await staging?.cleanup();
});

describe('reload contract: flat layout', () => {
  it('`rsync -a --delete` of a new store over the old one (mtimes preserved): served', async () => {
    // rsync skips a file whose size and mtime (whole seconds) match the old one's: a store built in
    // the same second as the one it replaces kept the old, same-size chroma.sqlite3 beside the new
    // segment folder (one run in 3-5; the service rightly refused that mix). A real rebuild is later.
    await new Promise((r) => setTimeout(r, 1_100));
    const next = await flatStore();
    const before = await c.lastId();
    execFileSync(requireTool('rsync'), ['-a', '--delete', `${next.dir}/`, `${svc.dirs.store}/`]);
    await expectServedAfter(before, next.n);
  });

  it('`rm -rf` then `cp -r`: served', async () => {
    const next = await flatStore();
    const before = await c.lastId();
    for (const e of await readdir(svc.dirs.store)) await rm(join(svc.dirs.store, e), { recursive: true, force: true });
    execFileSync('cp', ['-r', `${next.dir}/.`, svc.dirs.store]);
    await expectServedAfter(before, next.n);
  });

  it('`mv` of a whole folder into place (the watched folder replaced): served', async () => {
    const next = await flatStore();
    const before = await c.lastId();
    await rename(svc.dirs.store, `${svc.dirs.store}.old`);
    await rename(next.dir, svc.dirs.store);
    await expectServedAfter(before, next.n);
    await rm(`${svc.dirs.store}.old`, { recursive: true, force: true });
  });

  it('a new store in a subfolder beside the flat store: rejected as ambiguous, with how to fix it', async () => {
    const next = await flatStore();
    const served = await servedEdition();
    await c.expectRejected(
      () => cp(next.dir, join(svc.dirs.store, 'newer'), { recursive: true }),
      'RAG_STORE_LAYOUT_AMBIGUOUS',
      /flat store .* and store folder newer.*move the flat files into their own folder/,
    );
    expect(await servedEdition()).toBe(served);
    const before = await c.lastId();
    await rm(join(svc.dirs.store, 'newer'), { recursive: true, force: true });
    expect((await c.nextAttempt(before)).outcome).toBe('unchanged');
  });

  it('a live writer (SQLite journal beside chroma.sqlite3): waits, shows it in the status, serves once the writer is done', async () => {
    const served = await servedEdition();
    const next = await flatStore();
    const before = await c.lastId();
    // A writer process opens the database (its journal appears) and writes batch by batch.
    await writeFile(join(svc.dirs.store, 'chroma.sqlite3-journal'), 'journal');
    execFileSync('cp', ['-r', `${next.dir}/.`, svc.dirs.store]);
    const waiting = await c.nextAttempt(before, 'waiting');
    expect(waiting.error.code).toBe('RAG_STORE_WRITE_IN_PROGRESS');
    const s = await c.status();
    expect(s.waiting.files).toEqual(['chroma.sqlite3-journal']);
    expect(s.waiting.message).toMatch(/a writer still has the store .* open/);
    expect(await servedEdition()).toBe(served); // never served in pieces
    await rm(join(svc.dirs.store, 'chroma.sqlite3-journal'));
    await c.nextAttempt(waiting.id, 'accepted');
    expect(await servedEdition()).toBe(next.n);
    expect((await c.status()).waiting).toBeNull();
  });
});
