import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseModelName, listModelFolders, resolveHubSnapshot } from '../../src/embeddings/model-folders.js';
import { getJson, PROJECT_MODEL_DIR, startTestService, tempDir, waitFor, type TestService } from '../helpers/harness.js';

const REPO = 'models--acme--glove-sif';
const REV1 = 'a'.repeat(40);
const REV2 = 'b'.repeat(40);

/** Files of a folder, relative paths. */
async function files(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await files(p, base)));
    else out.push(relative(base, p));
  }
  return out;
}

/**
 * A snapshot laid out like huggingface_hub writes it: content in blobs/<sha256>, the snapshot's files
 * relative symlinks to them. config.json is linked last (a snapshot counts once it has one).
 */
async function writeSnapshot(hub: string, rev: string): Promise<void> {
  const repo = join(hub, REPO);
  const rels = (await files(PROJECT_MODEL_DIR)).sort((a, b) => (a === 'config.json' ? 1 : b === 'config.json' ? -1 : 0));
  for (const rel of rels) {
    const sha = createHash('sha256').update(await readFile(join(PROJECT_MODEL_DIR, rel))).digest('hex');
    const blob = join(repo, 'blobs', sha);
    await mkdir(dirname(blob), { recursive: true });
    await copyFile(join(PROJECT_MODEL_DIR, rel), blob);
    const link = join(repo, 'snapshots', rev, rel);
    await mkdir(dirname(link), { recursive: true });
    await symlink(relative(dirname(link), blob), link);
  }
}

/** Point refs/main at a revision by rename, as huggingface_hub does. */
async function pointRefsMain(hub: string, rev: string): Promise<void> {
  const refs = join(hub, REPO, 'refs');
  await mkdir(refs, { recursive: true });
  await writeFile(join(refs, '.main.tmp'), rev);
  await rename(join(refs, '.main.tmp'), join(refs, 'main'));
}

describe('hub cache resolution rejects hostile refs/main and incomplete snapshots with a clear error', () => {
  it.each([
    ['a path in refs/main', async (hub: string) => pointRefsMain(hub, '../../../etc'), 'RAG_MODEL_NOT_FOUND', 'model acme/glove-sif: refs/main holds "../../../etc", not a revision name'],
    ['a FIFO as refs/main', async (hub: string) => {
      await mkdir(join(hub, REPO, 'refs'), { recursive: true });
      execFileSync('mkfifo', [join(hub, REPO, 'refs', 'main')]);
    }, 'RAG_FS_SPECIAL_FILE', 'refs/main is a'],
    ['a huge refs/main', async (hub: string) => {
      await mkdir(join(hub, REPO, 'refs'), { recursive: true });
      await writeFile(join(hub, REPO, 'refs', 'main'), 'a'.repeat(10_000));
    }, 'RAG_FS_TOO_LARGE', 'refs/main has 10000 bytes'],
    ['refs/main naming a snapshot without config.json', async (hub: string) => {
      await mkdir(join(hub, REPO, 'snapshots', REV2), { recursive: true });
      await pointRefsMain(hub, REV2);
    }, 'RAG_MODEL_NOT_FOUND', `model acme/glove-sif: refs/main names ${REV2}, but snapshots/${REV2} has no config.json`],
  ] as const)('%s', async (_name, prepare, code, message) => {
    const { dir: hub, cleanup } = await tempDir('rag-t-hub-bad-');
    try {
      await writeSnapshot(hub, REV1);
      await prepare(hub);
      const err = await resolveHubSnapshot(hub, 'acme/glove-sif').catch((e: unknown) => e);
      expect(err).toMatchObject({ code });
      expect((err as Error).message).toContain(message);
    } finally {
      await cleanup();
    }
  });

  it('without refs/main, the newest complete snapshot', async () => {
    const { dir: hub, cleanup } = await tempDir('rag-t-hub-norefs-');
    try {
      await writeSnapshot(hub, REV1);
      await new Promise((r) => setTimeout(r, 20));
      await writeSnapshot(hub, REV2);
      expect(await resolveHubSnapshot(hub, 'acme/glove-sif')).toBe(join(hub, REPO, 'snapshots', REV2));
    } finally {
      await cleanup();
    }
  });
});

describe('Hugging Face hub cache as MODELS_DIR (MODEL_NAME=org/name, offline)', () => {
  let svc: TestService;
  let hub: string;
  let cleanupHub: () => Promise<void>;
  beforeAll(async () => {
    ({ dir: hub, cleanup: cleanupHub } = await tempDir('rag-t-hub-'));
    await writeSnapshot(hub, REV1);
    await pointRefsMain(hub, REV1);
    svc = await startTestService({ env: { MODELS_DIR: hub, MODEL_NAME: 'acme/glove-sif', WATCH: 'true' } });
  });
  afterAll(async () => {
    await svc?.stop();
    await cleanupHub?.();
  });

  it('resolves org/name to the snapshot refs/main names, and lists hub models as org/name', async () => {
    expect(await resolveHubSnapshot(hub, 'acme/glove-sif')).toBe(join(hub, REPO, 'snapshots', REV1));
    expect(await listModelFolders(hub)).toEqual(['acme/glove-sif']);
    expect(await chooseModelName(hub, undefined)).toBe('acme/glove-sif');
    await expect(resolveHubSnapshot(hub, 'acme/missing')).rejects.toMatchObject({ code: 'RAG_MODEL_NOT_FOUND', message: `model acme/missing: no models--acme--missing in the hub cache ${hub}` });
  });

  it('serves the snapshot: /v1/models and /v1/embeddings know it as org/name', async () => {
    const status = await getJson(`${svc.url}/admin/status`);
    expect(status.active.model.name).toBe(REV1);
    const client = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    expect((await client.models.list()).data.map((m) => m.id)).toContain('acme/glove-sif');
    const emb = await client.embeddings.create({ model: 'acme/glove-sif', input: 'a kitten on the rug' });
    expect(emb.model).toBe('acme/glove-sif');
    expect(emb.data[0]!.embedding).toHaveLength(100);
  });

  it('a new snapshot alone changes nothing; moving refs/main to it hot-reloads the model', async () => {
    await writeSnapshot(hub, REV2);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await getJson(`${svc.url}/admin/status`)).active.model.name).toBe(REV1);
    await pointRefsMain(hub, REV2);
    const status = await waitFor(async () => {
      const s = await getJson(`${svc.url}/admin/status`);
      return s.active?.model.name === REV2 ? s : null;
    }, 30_000, 'the generation on the new snapshot');
    expect(status.history[0]).toMatchObject({ outcome: 'accepted' });
  });

  it('refs/main naming a snapshot that is not there is rejected; the current model keeps serving', async () => {
    await pointRefsMain(hub, 'c'.repeat(40));
    const status = await waitFor(async () => {
      const s = await getJson(`${svc.url}/admin/status`);
      return s.lastError?.error?.code === 'RAG_MODEL_NOT_FOUND' ? s : null;
    }, 30_000, 'the rejected reload');
    expect(status.lastError.error.message).toContain(`refs/main names ${'c'.repeat(40)}, but snapshots/${'c'.repeat(40)} has no config.json`);
    expect(status.active.model.name).toBe(REV2);
    const res = await fetch(`${svc.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question: 'lighthouse' }) });
    expect(res.status).toBe(200);
  });
});
