import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/fs/fingerprint.js';
import { importChromaStore } from '../../src/ingest/import-chroma.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';
import { SERVING_INDEX_FILE } from '../../src/store/index-cache.js';
import { MANIFEST_FILE, manifestSchema } from '../../src/store/manifest.js';
import { copyModelInto, logger, MODEL_NAME, ROOT, postJson, getJson, startTestService, tempDir, testModel, type TestService } from '../helpers/harness.js';

/**
 * `npm run ingest -- --from-chroma DIR`: a Chroma folder built elsewhere (here as Python LangChain
 * writes one: collection `langchain`, Chroma's default l2 space, no `hnsw:space` metadata, no manifest)
 * published as a version folder with serving-index.bin. The service must load it from that file and
 * answer exactly as it answers from the same folder served in place (read through Chroma); the
 * source folder must be left as it was; every hostile source is refused with its code and leaves
 * nothing in the vector store folder.
 */
const CLI = join(ROOT, 'dist', 'src', 'ingest', 'cli.js');
let staging: { dir: string; cleanup: () => Promise<void> };
let pyDir: string;
const N = 240;
const TOPICS = ['lighthouse keeper lamp oil', 'river barge cargo manifest', 'orchard apple frost', 'railway signal timetable', 'library catalogue index cards', 'glacier ice core sample'];

/** A Chroma folder as Python LangChain's `Chroma.from_texts(..., persist_directory=DIR)` leaves it. */
async function pythonLikeStore(dir: string, options: { collection?: string; dimension?: number; records?: number; space?: 'l2' | 'cosine' } = {}): Promise<void> {
  const model = await testModel();
  const n = options.records ?? N;
  const texts = Array.from({ length: n }, (_, i) => `${TOPICS[i % TOPICS.length]} note ${i}: entry ${i * 7} of the ${TOPICS[(i * 5) % TOPICS.length]} ledger`);
  const vectors = options.dimension ? texts.map((_, i) => Array.from({ length: options.dimension! }, (_, j) => Math.sin(i + j))) : await model.embedBatch(texts);
  const server = new ChromaServer({ dataDir: dir, logger, restart: false });
  await server.start();
  try {
    const client = ChromaStore.client(server.url);
    const c = await client.createCollection({ name: options.collection ?? 'langchain', embeddingFunction: null, ...(options.space ? { configuration: { hnsw: { space: options.space } } } : {}) });
    for (let i = 0; i < n; i += 100) {
      const ids = texts.slice(i, i + 100).map((_, j) => `py-${i + j}`);
      await c.add({
        ids,
        embeddings: vectors.slice(i, i + 100),
        documents: texts.slice(i, i + 100),
        metadatas: ids.map((_, j) => ({ source: `notes/${(i + j) % 12}.txt`, ...((i + j) % 3 === 0 ? { title: `${['Quarry', 'Harbour', 'Mill'][(i + j) % 3 === 0 ? ((i + j) / 3) % 3 : 0]} ledger ${(i + j) % 12}` } : {}) })),
      });
    }
  } finally {
    await server.stop();
  }
}

/** Every file below dir with its sha256 (the source must be left byte for byte as it was). */
async function contents(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p.slice(dir.length)] = sha256Hex(await readFile(p));
  }
  return out;
}

beforeAll(async () => {
  staging = await tempDir('rag-t-import-');
  pyDir = join(staging.dir, 'py');
  await pythonLikeStore(pyDir);
}, 120_000);
afterAll(async () => {
  await staging?.cleanup();
});

describe('npm run ingest -- --from-chroma: a Python-built Chroma folder published as a version with serving-index.bin', () => {
  let imported: TestService;
  let inPlace: TestService;
  afterAll(async () => {
    await imported?.stop();
    await inPlace?.stop();
  });

  it('the CLI publishes it; the service loads it from serving-index.bin and answers exactly as the folder served in place', async () => {
    const before = await contents(pyDir);
    let out = '';
    imported = await startTestService({
      store: false,
      // The real CLI in a process of its own (as `npm run ingest` runs it): an await the event loop
      // does not hold would end it early, silently, with exit code 0 and nothing published.
      prepare: async (dirs) => {
        out = execFileSync(process.execPath, [CLI, '--from-chroma', pyDir, '--out', dirs.store, '--models-dir', dirs.models, '--model', MODEL_NAME, '--version', 'py-v1'], { encoding: 'utf8', timeout: 60_000 });
      },
    });
    expect(out).toMatch(/published py-v1 from .* \(collection langchain, 240 records, model .*, with serving-index\.bin\)/);
    // The source folder is untouched (Chroma read a copy).
    expect(await contents(pyDir)).toEqual(before);
    const manifest = manifestSchema.parse(JSON.parse(await readFile(join(imported.dirs.store, 'py-v1', MANIFEST_FILE), 'utf8')));
    expect(manifest).toMatchObject({ version: 'py-v1', collection: 'langchain', chunkCount: N, embedding: { model: MODEL_NAME, dimension: 100 } });
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining([SERVING_INDEX_FILE, 'chroma.sqlite3']));
    expect((await readFile(join(imported.dirs.store, 'CURRENT'), 'utf8')).trim()).toBe('py-v1');

    inPlace = await startTestService({ store: false, prepare: (dirs) => cp(pyDir, dirs.store, { recursive: true }) });
    const a = (await getJson(`${imported.url}/admin/status`)).active.store;
    const b = (await getJson(`${inPlace.url}/admin/status`)).active.store;
    expect(a).toMatchObject({ kind: 'versioned', version: 'py-v1', count: N, backend: { kind: 'in-process', loadedFrom: 'serving-index', space: 'l2' } });
    expect(b).toMatchObject({ kind: 'flat', count: N, backend: { kind: 'in-process', space: 'l2' } });
    expect(b.backend.loadedFrom).not.toBe('serving-index');
    // Title words are in no text: the keyword side finds them only in the title field, as the service indexes it.
    for (const question of ['lighthouse lamp oil', 'frost on the apple orchard', 'quarry railway timetable', 'harbour mill']) {
      for (const mode of ['dense', 'keyword', 'hybrid']) {
        const body = { question, k: 5, mode };
        const [x, y] = await Promise.all([postJson(`${imported.url}/v1/retrieve`, body), postJson(`${inPlace.url}/v1/retrieve`, body)]);
        expect(x.status, `${mode} ${question}`).toBe(200);
        expect(y.status).toBe(200);
        const hits = (r: typeof x) => r.body.sources.map((s: { id: string; score: number; text: string; metadata: unknown }) => [s.id, Number(s.score.toFixed(5)), s.text, s.metadata]);
        expect(hits(x).length).toBeGreaterThan(0);
        expect(hits(x), `${mode} ${question}`).toEqual(hits(y));
      }
    }
  }, 120_000);
});

describe('--acceptance with --from-chroma: the questions are checked against the records before anything is written', () => {
  it('an expected id the store does not hold: RAG_INGEST_ACCEPTANCE_INVALID, nothing written; ids and sources it holds: acceptance.json listed in the manifest', async () => {
    const { dir, cleanup } = await tempDir('rag-t-import-acc-');
    try {
      const out = join(dir, 'vectorstore');
      const spec = (expected: string[]) => ({ path: 'acceptance.json', spec: { k: 5, minRecall: 0.5, questions: [{ question: 'lighthouse keeper lamp oil', expected }] } });
      const err = await importChromaStore({ sourceDir: pyDir, outDir: out, model: await testModel(), logger, version: 'acc-bad', acceptance: spec(['py-0', 'notes/99.txt']) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'RAG_INGEST_ACCEPTANCE_INVALID', message: expect.stringContaining('notes/99.txt') });
      expect(await readdir(out)).toEqual([]);
      const ok = await importChromaStore({ sourceDir: pyDir, outDir: out, model: await testModel(), logger, version: 'acc-ok', acceptance: spec(['py-0', 'notes/0.txt']) });
      expect(Object.keys(ok.manifest.files)).toContain('acceptance.json');
      expect(JSON.parse(await readFile(join(ok.dir, 'acceptance.json'), 'utf8'))).toMatchObject({ minRecall: 0.5 });
    } finally {
      await cleanup();
    }
  }, 60_000);
});

describe('--no-serving-index with --from-chroma', () => {
  it('publishes the Chroma files under a manifest without serving-index.bin (the service reads it through Chroma)', async () => {
    const { dir, cleanup } = await tempDir('rag-t-import-nosi-');
    try {
      const r = await importChromaStore({ sourceDir: pyDir, outDir: join(dir, 'vectorstore'), model: await testModel(), logger, version: 'nosi', servingIndexMaxChunks: 0 });
      expect(r.servingIndex).toBe(false);
      expect(r.manifest.chunkCount).toBe(N);
      expect(Object.keys(r.manifest.files)).toContain('chroma.sqlite3');
      expect(Object.keys(r.manifest.files)).not.toContain(SERVING_INDEX_FILE);
      expect(await readdir(r.dir)).not.toContain(SERVING_INDEX_FILE);
    } finally {
      await cleanup();
    }
  }, 60_000);
});

describe('hostile or unusable sources: refused with a code, nothing left in the vector store folder, the source unchanged', () => {
  const rows: Array<{ name: string; code: string; make: (src: string, out: string) => Promise<{ src: string; collection?: string }> }> = [
    { name: 'no such folder', code: 'RAG_STORE_FILE_MISSING', make: async (src) => ({ src: join(src, 'nope') }) },
    { name: 'a folder with no chroma.sqlite3', code: 'RAG_STORE_FILE_MISSING', make: async (src) => (await mkdir(join(src, 'empty')), { src: join(src, 'empty') }) },
    {
      name: 'a link out of the folder',
      code: 'RAG_FS_LINK_OUTSIDE_ROOT',
      make: async (src) => {
        await cp(pyDir, join(src, 'linked'), { recursive: true });
        await writeFile(join(src, 'secret.txt'), 'secret');
        await symlink(join(src, 'secret.txt'), join(src, 'linked', 'notes.txt'));
        return { src: join(src, 'linked') };
      },
    },
    {
      name: 'a FIFO in the folder (no hang)',
      code: 'RAG_FS_SPECIAL_FILE',
      make: async (src) => {
        await cp(pyDir, join(src, 'fifo'), { recursive: true });
        execFileSync('mkfifo', [join(src, 'fifo', 'pipe')]);
        return { src: join(src, 'fifo') };
      },
    },
    {
      name: 'a writer still at work (chroma.sqlite3-wal beside the database)',
      code: 'RAG_STORE_WRITE_IN_PROGRESS',
      make: async (src) => {
        await cp(pyDir, join(src, 'writing'), { recursive: true });
        await writeFile(join(src, 'writing', 'chroma.sqlite3-wal'), '');
        return { src: join(src, 'writing') };
      },
    },
    {
      name: 'a chroma.sqlite3 that is not a SQLite database',
      code: 'RAG_STORE_SQLITE_CORRUPT',
      make: async (src) => {
        await cp(pyDir, join(src, 'text'), { recursive: true });
        await writeFile(join(src, 'text', 'chroma.sqlite3'), 'not a database\n'.repeat(100));
        return { src: join(src, 'text') };
      },
    },
    {
      name: 'a truncated chroma.sqlite3',
      code: 'RAG_STORE_SQLITE_CORRUPT',
      make: async (src) => {
        await cp(pyDir, join(src, 'cut'), { recursive: true });
        const { truncate, stat } = await import('node:fs/promises');
        await truncate(join(src, 'cut', 'chroma.sqlite3'), Math.floor((await stat(join(src, 'cut', 'chroma.sqlite3'))).size / 2) + 100);
        return { src: join(src, 'cut') };
      },
    },
    { name: 'a collection it does not hold', code: 'RAG_STORE_COLLECTION_MISSING', make: async () => ({ src: pyDir, collection: 'docs' }) },
    {
      name: 'vectors of another dimension than the model',
      code: 'RAG_STORE_DIMENSION_MISMATCH',
      make: async (src) => (await pythonLikeStore(join(src, 'dim7'), { dimension: 7, records: 20 }), { src: join(src, 'dim7') }),
    },
    { name: 'the vector store folder inside the source', code: 'RAG_INGEST_FAILED', make: async (_src, out) => ({ src: join(out, '..') }) },
  ];
  for (const row of rows) {
    it(`${row.name}: ${row.code}`, async () => {
      const { dir, cleanup } = await tempDir('rag-t-import-bad-');
      try {
        const out = join(dir, 'vectorstore');
        await mkdir(out);
        const { src, collection } = await row.make(dir, out);
        const before = await contents(pyDir);
        const err = await importChromaStore({ sourceDir: src, outDir: out, model: await testModel(), logger, version: 'bad-v1', ...(collection ? { collection } : {}) }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toMatchObject({ code: row.code });
        expect(await readdir(out)).toEqual([]);
        expect(await contents(pyDir)).toEqual(before);
      } finally {
        await cleanup();
      }
    }, 60_000);
  }
});

describe('as an unprivileged user (nobody): the CLI process itself', () => {
  it('a file of the Chroma folder it may not read: RAG_FS_UNREADABLE naming it; a vector store folder it may not write: RAG_INGEST_FAILED; nothing published; then a readable folder: published', async () => {
    const { chmod, chown } = await import('node:fs/promises');
    const { dir, cleanup } = await tempDir('rag-t-import-nobody-');
    try {
      await chmod(dir, 0o755);
      await copyModelInto(join(dir, 'models'));
      const out = join(dir, 'vectorstore');
      await mkdir(out);
      await chown(out, 65534, 65534);
      const src = join(dir, 'py');
      await cp(pyDir, src, { recursive: true });
      execFileSync('chmod', ['-R', 'a+rX', src]);
      await chmod(join(src, 'chroma.sqlite3'), 0o600); // root's, unreadable for nobody
      const run = (to = out) => {
        try {
          return { code: 0, out: execFileSync(process.execPath, [CLI, '--from-chroma', src, '--out', to, '--models-dir', join(dir, 'models'), '--model', MODEL_NAME], { encoding: 'utf8', uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }) };
        } catch (err) {
          const e = err as { status: number; stderr: string };
          return { code: e.status, out: String(e.stderr) };
        }
      };
      const refused = run();
      expect(refused.code).toBe(1);
      expect(refused.out).toMatch(/\[RAG_FS_UNREADABLE\].*chroma\.sqlite3/);
      expect(await readdir(out)).toEqual([]);
      await chmod(join(src, 'chroma.sqlite3'), 0o644);
      // A vector store folder it may not write (root's, 0755): refused with a code, nothing left.
      const roOut = join(dir, 'ro-vectorstore');
      await mkdir(roOut, { mode: 0o755 });
      const denied = run(roOut);
      expect(denied.code).toBe(1);
      expect(denied.out).toMatch(/\[RAG_INGEST_FAILED\] cannot write into the vector store folder .*EACCES/);
      expect(await readdir(roOut)).toEqual([]);
      const ok = run();
      expect(ok.out).toMatch(/with serving-index\.bin/);
      expect(ok.code).toBe(0);
    } finally {
      await cleanup();
    }
  }, 120_000);
});

