import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { loadEmbeddingModel, type EmbeddingModel } from '../../src/embeddings/model-loader.js';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishStoreVersion, type PublishResult } from '../../src/ingest/publish.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import { createSilentLogger } from '../../src/observability/logger.js';
import { createService, type Service } from '../../src/service.js';
import { MANIFEST_FILE } from '../../src/store/manifest.js';
import type { AcceptanceSpec } from '../../src/store/acceptance.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
/** The real generated model (made by the set-up; test/global-setup.ts makes sure it exists). */
export const MODEL_NAME = 'glove-sif-100d';
export const PROJECT_MODEL_DIR = join(ROOT, 'models', MODEL_NAME);
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const logger = createSilentLogger();

/** A temp folder removed by the returned cleanup. */
export async function tempDir(prefix = 'rag-t-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A models folder holding a copy of the real model (so tests can break it safely). */
export async function copyModelInto(modelsDir: string, name = MODEL_NAME): Promise<string> {
  const dir = join(modelsDir, name);
  await cp(PROJECT_MODEL_DIR, dir, { recursive: true });
  return dir;
}

let sharedModel: Promise<EmbeddingModel> | undefined;
/** One loaded copy of the real model per test file, for building stores. */
export function testModel(): Promise<EmbeddingModel> {
  sharedModel ??= loadEmbeddingModel({ dir: PROJECT_MODEL_DIR });
  return sharedModel;
}

/** Ingest a docs folder into a store version with the real loaders, splitter, model and Chroma. */
export async function publishDocs(outDir: string, docsDir: string, options: { version?: string; activate?: boolean; chunkSize?: number; acceptance?: AcceptanceSpec; servingIndex?: boolean | 'auto'; keywordShipMaxChunks?: number } = {}): Promise<PublishResult> {
  const { documents } = await loadDocuments(docsDir);
  const chunks = await splitDocuments(documents, { chunkSize: options.chunkSize ?? 300, chunkOverlap: 30 });
  return publishStoreVersion({
    outDir,
    chunks,
    model: await testModel(),
    logger,
    documentCount: documents.length,
    ...(options.version ? { version: options.version } : {}),
    ...(options.activate === false ? { activate: false } : {}),
    ...(options.acceptance ? { acceptance: options.acceptance } : {}),
    ...(options.servingIndex !== undefined ? { servingIndex: options.servingIndex } : {}),
    ...(options.keywordShipMaxChunks !== undefined ? { keywordShipMaxChunks: options.keywordShipMaxChunks } : {}),
  });
}

export interface TestService {
  service: Service;
  url: string;
  config: Config;
  dirs: { root: string; models: string; store: string; runtime: string; audit: string };
  stop(): Promise<void>;
}

/** A real service on port 0 over temp models/vectorstore folders holding the real model and a real store. */
export async function startTestService(
  options: { env?: Record<string, string>; docs?: string; store?: boolean; prepare?: (dirs: TestService['dirs']) => Promise<void> } = {},
): Promise<TestService> {
  const { dir: root, cleanup } = await tempDir('rag-t-svc-');
  const dirs = { root, models: join(root, 'models'), store: join(root, 'vectorstore'), runtime: join(root, 'runtime'), audit: join(root, 'audit') };
  await copyModelInto(dirs.models);
  if (options.store !== false) await publishDocs(dirs.store, options.docs ?? join(FIXTURES, 'docs-a'));
  await options.prepare?.(dirs);
  const config = loadConfig({
    PORT: '0',
    LOG_LEVEL: 'silent',
    MODELS_DIR: dirs.models,
    VECTORSTORE_DIR: dirs.store,
    RUNTIME_DIR: dirs.runtime,
    AUDIT_LOG_DIR: dirs.audit,
    WATCH: 'false',
    WATCH_DEBOUNCE_MS: '100',
    WATCH_STABILITY_MS: '150',
    WATCH_RESCAN_MS: '1000',
    DRAIN_TIMEOUT_MS: '10000',
    ...options.env,
  });
  const service = createService(config, { logger });
  try {
    const url = await service.start();
    return {
      service,
      url,
      config,
      dirs,
      stop: async () => {
        await service.stop();
        await cleanup();
      },
    };
  } catch (err) {
    await service.stop();
    await cleanup();
    throw err;
  }
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Poll until fn returns a truthy value (or throw after timeoutMs, with the last value seen). */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs = 15_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<any> {
  const res = await fetch(url, { headers });
  return res.json();
}

/** Write a docs folder for "edition N": every file name and text carry N, so a source tells its version. */
export async function writeEditionDocs(dir: string, n: number): Promise<string> {
  const { mkdir, writeFile } = await import('node:fs/promises');
  const docs = join(dir, `edition-docs-${n}`);
  await mkdir(docs, { recursive: true });
  await writeFile(join(docs, `e${n}-lighthouse.md`), `# Lighthouse edition ${n}\n\nIn edition ${n} the lighthouse keeper trimmed the lamp wick and wound the clockwork of the Fresnel lens.\n`);
  await writeFile(join(docs, `e${n}-bread.md`), `# Bread edition ${n}\n\nIn edition ${n} the baker fed the sourdough starter with flour and water every morning.\n`);
  return docs;
}

/** Chroma servers running on a folder below dir (counted from the process table, like an operator would). */
export function chromaProcessesUnder(dir: string): number {
  try {
    return execFileSync('pgrep', ['-af', 'chroma-launcher.cjs'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(`--path ${dir}/`)).length;
  } catch {
    return 0; // pgrep exits 1 when nothing matches
  }
}

/**
 * Add a 1 TiB sparse file to a version folder and list it in its manifest: its snapshot copy
 * would take many minutes (made in place: copying such a file would itself take minutes).
 */
export async function listHugeSparseFile(versionDir: string): Promise<void> {
  const size = 1024 ** 4;
  const fh = await open(join(versionDir, 'huge.bin'), 'w');
  await fh.truncate(size);
  await fh.close();
  const manifest = JSON.parse(await readFile(join(versionDir, MANIFEST_FILE), 'utf8')) as { files: Record<string, unknown> };
  manifest.files['huge.bin'] = { size, sha256: '0'.repeat(64) };
  await writeFile(join(versionDir, MANIFEST_FILE), JSON.stringify(manifest));
}

/** A loopback port nothing listens on (bound, read, closed): for a server to start on, or a URL that refuses. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
