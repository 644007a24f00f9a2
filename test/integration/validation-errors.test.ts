import { readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { loadEmbeddingModel } from '../../src/embeddings/model-loader.js';
import { ChromaServer, liveChromaChildren } from '../../src/store/chroma-server.js';
import { createCollectionWithRecords } from '../../src/store/chroma-store.js';
import { createService } from '../../src/service.js';
import { copyModelInto, FIXTURES, logger, postJson, publishDocs, tempDir, testModel } from '../helpers/harness.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
/** Every file and folder below dir, relative, sorted (folders end in /). */
async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.map((e) => `${relative(dir, join(e.parentPath, e.name))}${e.isDirectory() ? '/' : ''}`).sort();
}
async function tmp(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('model folder validation (real transformers.js loader)', () => {
  it('names a missing tokenizer.json', async () => {
    const dir = await copyModelInto(await tmp());
    await rm(join(dir, 'tokenizer.json'));
    await expect(loadEmbeddingModel({ dir })).rejects.toMatchObject({
      code: 'RAG_MODEL_FILE_MISSING',
      message: `model folder ${dir} has no tokenizer.json`,
    });
  });

  it('names a config.json that is not JSON', async () => {
    const dir = await copyModelInto(await tmp());
    await writeFile(join(dir, 'config.json'), '{"model_type": ');
    await expect(loadEmbeddingModel({ dir })).rejects.toMatchObject({ code: 'RAG_MODEL_FILE_INVALID', message: expect.stringMatching(/config\.json .* is not valid JSON/) });
  });

  it('names a truncated onnx/model.onnx', async () => {
    const dir = await copyModelInto(await tmp());
    await truncate(join(dir, 'onnx/model.onnx'), 4096);
    await expect(loadEmbeddingModel({ dir })).rejects.toMatchObject({ code: 'RAG_MODEL_LOAD_FAILED', message: expect.stringContaining('onnx/model.onnx is not valid') });
  });

  it('a missing folder is RAG_MODEL_NOT_FOUND', async () => {
    const dir = join(await tmp(), 'nope');
    await expect(loadEmbeddingModel({ dir })).rejects.toMatchObject({ code: 'RAG_MODEL_NOT_FOUND' });
  });

  it('the service does not start on a model without tokenizer.json, and says why', async () => {
    const root = await tmp();
    const dir = await copyModelInto(join(root, 'models'));
    await publishDocs(join(root, 'vs'), join(FIXTURES, 'docs-b'));
    await rm(join(dir, 'tokenizer.json'));
    const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', WATCH: 'false', MODELS_DIR: join(root, 'models'), VECTORSTORE_DIR: join(root, 'vs'), RUNTIME_DIR: join(root, 'rt'), AUDIT_LOG_DIR: 'off' });
    const service = createService(config, { logger });
    await expect(service.start()).rejects.toMatchObject({ code: 'RAG_MODEL_FILE_MISSING', message: expect.stringContaining('has no tokenizer.json') });
    await service.stop();
  });
});

/** A flat Chroma persist folder (like Python LangChain's persist_directory) with given vectors. */
async function flatStore(dir: string, collection: string, records: Array<{ id: string; text: string; embedding: number[]; metadata: Record<string, string> }>, space?: 'l2') {
  const server = new ChromaServer({ dataDir: dir, logger, restart: false });
  await server.start();
  try {
    if (space === 'l2') {
      // Python LangChain creates collections with Chroma's default configuration (l2).
      const { ChromaClient } = await import('chromadb');
      const u = new URL(server.url);
      const client = new ChromaClient({ host: u.hostname, port: Number(u.port) });
      const c = await client.createCollection({ name: collection, embeddingFunction: null });
      await c.add({ ids: records.map((r) => r.id), embeddings: records.map((r) => r.embedding), documents: records.map((r) => r.text), metadatas: records.map((r) => r.metadata) });
    } else {
      await createCollectionWithRecords({ url: server.url, collection, records: [records] });
    }
  } finally {
    await server.stop();
  }
}

describe('store validation', () => {
  it('refuses a store whose dimension differs from the model, naming both', async () => {
    const root = await tmp();
    await copyModelInto(join(root, 'models'));
    await flatStore(join(root, 'vs'), 'docs', [
      { id: 'a', text: 'three dims', embedding: [1, 0, 0], metadata: { source: 'a' } },
      { id: 'b', text: 'more dims', embedding: [0, 1, 0], metadata: { source: 'b' } },
    ]);
    const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', WATCH: 'false', MODELS_DIR: join(root, 'models'), VECTORSTORE_DIR: join(root, 'vs'), RUNTIME_DIR: join(root, 'rt'), AUDIT_LOG_DIR: 'off' });
    const service = createService(config, { logger });
    await expect(service.start()).rejects.toMatchObject({
      code: 'RAG_STORE_DIMENSION_MISMATCH',
      message: expect.stringMatching(/model glove-sif-100d makes 100-d vectors but store inplace-[0-9a-f]+ holds 3-d vectors/),
    });
    await service.stop();
    expect(liveChromaChildren()).toBe(0);
    // The rejected version's records were read (the dimension is checked on them): no serving index
    // cache entry is written for a generation that never serves (it would evict a good one), and
    // nothing writes into RUNTIME_DIR once stop() has returned (a build thread's cache write did).
    const after = await listTree(join(root, 'rt'));
    expect(after.filter((f) => f.includes('index-cache/'))).toEqual([]);
    await new Promise((r) => setTimeout(r, 300));
    expect(await listTree(join(root, 'rt'))).toEqual(after);
  });

  it('serves a store laid out like Python LangChain persist_directory (collection "langchain", l2, no manifest)', async () => {
    const root = await tmp();
    await copyModelInto(join(root, 'models'));
    const model = await testModel();
    const texts = ['The Fresnel lens made lighthouse beams visible far out at sea.', 'Sourdough rises because wild yeast ferments the dough.', 'Shield volcanoes are built by fluid basalt lava.'];
    const vectors = await model.embedBatch(texts);
    await flatStore(
      join(root, 'vs'),
      'langchain',
      texts.map((text, i) => ({ id: `doc-${i}`, text, embedding: vectors[i]!, metadata: { source: `file${i}.txt` } })),
      'l2',
    );
    const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', WATCH: 'false', MODELS_DIR: join(root, 'models'), VECTORSTORE_DIR: join(root, 'vs'), RUNTIME_DIR: join(root, 'rt'), AUDIT_LOG_DIR: 'off' });
    const service = createService(config, { logger });
    try {
      const url = await service.start();
      // Dense scores: l2 distances of normalised vectors turned back into cosine similarities.
      const res = await postJson(`${url}/v1/retrieve`, { question: 'why does bread dough rise', k: 3, mode: 'dense' });
      expect(res.status).toBe(200);
      expect(res.body.sources[0].id).toBe('doc-1');
      expect(res.body.sources[0].score).toBeGreaterThan(0.5);
      expect(res.body.sources[0].score).toBeLessThanOrEqual(1.0001);
      expect(res.body.generation.storeVersion).toMatch(/^inplace-/);
      // No keyword index shipped: it was built from the collection's documents before going live.
      const status = await (await fetch(`${url}/admin/status`)).json();
      expect(status.active.store.keywordIndex).toEqual({ origin: 'built', documents: 3, searchedOn: 'event-loop' });
      const hybrid = await postJson(`${url}/v1/retrieve`, { question: 'Fresnel lens', k: 1 });
      expect(hybrid.body.sources[0].id).toBe('doc-0');
      expect(hybrid.body.sources[0].keywordScore).toBeGreaterThan(0);
    } finally {
      await service.stop();
    }
  });

  it('the service does not start without any store, and says where it looked', async () => {
    const root = await tmp();
    await copyModelInto(join(root, 'models'));
    const config = loadConfig({ PORT: '0', LOG_LEVEL: 'silent', WATCH: 'false', MODELS_DIR: join(root, 'models'), VECTORSTORE_DIR: join(root, 'vs'), RUNTIME_DIR: join(root, 'rt'), AUDIT_LOG_DIR: 'off' });
    const service = createService(config, { logger });
    await expect(service.start()).rejects.toMatchObject({ code: 'RAG_STORE_NOT_FOUND' });
    await service.stop();
  });
});

