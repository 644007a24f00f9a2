import { execFile } from 'node:child_process';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HuggingFaceTransformersEmbeddings } from '@langchain/community/embeddings/huggingface_transformers';
import { Chroma } from '@langchain/community/vectorstores/chroma';
import { env } from '@huggingface/transformers';
import { ChromaClient } from 'chromadb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256File } from '../../src/fs/fingerprint.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { FIXTURES, getJson, logger, MODEL_NAME, postJson, ROOT, startTestService, tempDir, type TestService } from '../helpers/harness.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'dist', 'src', 'ingest', 'cli.js');
const QUESTIONS = ['Who invented the lighthouse lens?', 'how do bees make honey', 'storm at sea'];

/** `npm run ingest` as a user runs it: the compiled CLI, configured by environment variables. */
async function ingest(docs: string, envVars: Record<string, string>, extra: string[] = []): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, docs, '--chunk-size', '300', '--chunk-overlap', '30', '--quiet', ...extra], {
    env: { ...process.env, ...envVars },
  });
  return stdout;
}

async function hashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out[join(e.parentPath, e.name).slice(dir.length)] = await sha256File(join(e.parentPath, e.name));
  }
  return out;
}

describe('a store written by `npm run ingest`, opened by LangChain.js Chroma and served by us', () => {
  let svc: TestService;
  let version: string;
  let versionDir: string;
  let before: Record<string, string>;
  let optedOut: { stdout: string; files: string[] };
  let byDefault: string;
  beforeAll(async () => {
    svc = await startTestService({
      store: false,
      prepare: async (dirs) => {
        // Through loadConfig like the service: VECTORSTORE_DIR, MODELS_DIR, KEEP_VERSIONS.
        const envVars = { VECTORSTORE_DIR: dirs.store, MODELS_DIR: dirs.models, KEEP_VERSIONS: '0' };
        const first = await ingest(join(FIXTURES, 'docs-a'), envVars, ['--no-serving-index']);
        const firstVersion = /published (v\S+)/.exec(first)![1]!;
        optedOut = { stdout: first, files: await readdir(join(dirs.store, firstVersion)) };
        const second = await ingest(join(FIXTURES, 'docs-a'), envVars);
        byDefault = second;
        expect(second).toContain(`pruned ${firstVersion}`); // KEEP_VERSIONS=0: only the new version stays
        version = /published (v\S+)/.exec(second)![1]!;
        versionDir = join(dirs.store, version);
        before = await hashes(versionDir);
      },
    });
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('ships serving-index.bin by default (the service loads the version from it, no Chroma child); --no-serving-index ships none', async () => {
    expect(optedOut.files).not.toContain('serving-index.bin');
    expect(optedOut.stdout).not.toContain('with serving-index.bin');
    expect(byDefault).toContain('with serving-index.bin');
    const manifest = JSON.parse(await readFile(join(versionDir, 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest.files)).toContain('serving-index.bin');
    const status = await getJson(`${svc.url}/admin/status`);
    expect(status.active.store.backend.loadedFrom).toBe('serving-index');
  });

  it('KEEP_VERSIONS reached the CLI: one version left', async () => {
    const versions = (await readdir(svc.dirs.store)).filter((n) => n.startsWith('v'));
    expect(versions).toEqual([version]);
  });

  it("the collection is LangChain's default name, with hnsw:space cosine in its metadata", async () => {
    const manifest = JSON.parse(await readFile(join(versionDir, 'manifest.json'), 'utf8'));
    expect(manifest.collection).toBe('langchain');
    const { dir: copy, cleanup } = await tempDir('rag-t-lc-meta-');
    await cp(versionDir, copy, { recursive: true });
    const server = new ChromaServer({ dataDir: copy, logger, restart: false });
    try {
      await server.start();
      const client = new ChromaClient({ path: server.url });
      const [c] = await client.listCollections();
      expect(c!.name).toBe('langchain');
      expect(c!.metadata?.['hnsw:space']).toBe('cosine');
      expect(c!.configuration?.hnsw?.space).toBe('cosine');
    } finally {
      await server.stop();
      await cleanup();
    }
  });

  it('LangChain.js Chroma finds the documents and gives the same top-k ids and scores as /v1/retrieve dense', async () => {
    const { dir: copy, cleanup } = await tempDir('rag-t-lc-');
    await cp(versionDir, copy, { recursive: true });
    const server = new ChromaServer({ dataDir: copy, logger, restart: false });
    try {
      await server.start();
      env.allowRemoteModels = false;
      env.localModelPath = svc.dirs.models;
      // LangChain's own transformers.js embeddings class on our model folder (mean pooling, normalised).
      const embeddings = new HuggingFaceTransformersEmbeddings({ model: MODEL_NAME, pretrainedOptions: { local_files_only: true, dtype: 'fp32' } as never });
      // collectionName 'langchain' is LangChain Python's default; LangChain.js defaults to a fresh random name, so JS users pass it.
      const store = new Chroma(embeddings, { index: new ChromaClient({ path: server.url }), collectionName: 'langchain' });
      for (const question of QUESTIONS) {
        const theirs = await store.similaritySearchWithScore(question, 5);
        const ours = await postJson(`${svc.url}/v1/retrieve`, { question, k: 5, mode: 'dense' });
        expect(ours.status).toBe(200);
        expect(theirs.length).toBe(5);
        expect(theirs.map(([d]) => d.id)).toEqual(ours.body.sources.map((s: { id: string }) => s.id));
        // LangChain.js returns Chroma's cosine distance; our score is the cosine similarity = 1 - distance.
        theirs.forEach(([, distance], i) => expect(1 - distance).toBeCloseTo(ours.body.sources[i].score, 5));
      }
      // LangChain found our collection: it created none beside it.
      expect((await new ChromaClient({ path: server.url }).listCollections()).map((c) => c.name)).toEqual(['langchain']);
    } finally {
      await server.stop();
      await cleanup();
    }
  });

  it('serving left every file of the store version untouched', async () => {
    await postJson(`${svc.url}/v1/query`, { question: QUESTIONS[0] });
    expect(await hashes(versionDir)).toEqual(before);
  });
});

describe('serving never creates or modifies collections in a store it is pointed at (CHROMA_URL)', () => {
  it('a missing collection is an error, not a new empty collection; the existing one is unchanged', async () => {
    const { dir, cleanup } = await tempDir('rag-t-lc-remote-');
    const server = new ChromaServer({ dataDir: dir, logger, restart: false });
    let svc: TestService | undefined;
    try {
      await server.start();
      const client = new ChromaClient({ path: server.url });
      const docs = await client.createCollection({ name: 'docs', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } }, metadata: { 'hnsw:space': 'cosine' } });
      await docs.add({ ids: ['a'], embeddings: [Array.from({ length: 100 }, (_, i) => (i === 0 ? 1 : 0))], documents: ['x'], metadatas: [{ source: 'x' }] });
      const snapshot = async () => (await client.listCollections()).map((c) => ({ name: c.name, metadata: c.metadata, configuration: c.configuration }));
      const was = await snapshot();
      svc = await startTestService({ store: false, env: { CHROMA_URL: server.url, CHROMA_COLLECTION: 'langchain', WAIT_FOR_STORE: 'true', WATCH: 'true' } });
      const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'x' });
      expect(res.status).toBe(503);
      expect(res.body.error.message).toContain('collection "langchain" not found');
      await svc.stop();
      svc = await startTestService({ store: false, env: { CHROMA_URL: server.url, CHROMA_COLLECTION: 'docs' } });
      // The old default name still serves.
      expect((await postJson(`${svc.url}/v1/retrieve`, { question: 'x', mode: 'dense' })).body.sources[0].id).toBe('a');
      expect(await snapshot()).toEqual(was);
    } finally {
      await svc?.stop();
      await server.stop();
      await cleanup();
    }
  });
});
