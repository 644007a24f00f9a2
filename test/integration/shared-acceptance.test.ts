import { execFile, execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishSharedVersion } from '../../src/ingest/publish-shared.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import type { AcceptanceSpec } from '../../src/store/acceptance.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { REGISTRY_COLLECTION, SharedRegistry } from '../../src/store/shared-registry.js';
import { readServerSentEvents } from '../helpers/sse.js';
import { getJson, logger, MODEL_NAME, postJson, ROOT, startTestService, tempDir, testModel, waitFor, writeEditionDocs, type TestService } from '../helpers/harness.js';

/**
 * Shared mode's quality gate: a version published to a shared Chroma with acceptance questions is
 * served by the replicas only when its questions reach their minimum recall@k, run by the same
 * loader phase as a local store's acceptance.json. A failing version, or a registry record changed
 * after publishing, is refused and every replica keeps the version it serves; a hostile
 * acceptance file is refused by the CLI before anything is published. The same flag gives a local
 * version its acceptance.json. Real Chroma server, real
 * model, real replicas (services on real sockets), the real CLI process.
 */
const run = promisify(execFile);
const CLI = join(ROOT, 'dist', 'src', 'ingest', 'cli.js');

let chroma: ChromaServer;
let root: string;
let cleanup: () => Promise<void>;
let registry: SharedRegistry;
const replicas: TestService[] = [];

/** Both questions find their own edition's document at k = 1. */
const good = (n: number): AcceptanceSpec => ({
  k: 1,
  minRecall: 1,
  questions: [
    { question: 'lighthouse keeper trimmed the lamp wick of the Fresnel lens', expected: [`e${n}-lighthouse.md`] },
    { question: 'the baker fed the sourdough starter with flour and water', expected: [`e${n}-bread.md`] },
  ],
});
/** Labelled wrong: the lighthouse question expects the bread document, so recall@1 is 0. */
const failing = (n: number): AcceptanceSpec => ({ k: 1, minRecall: 0.5, questions: [{ question: 'lighthouse keeper trimmed the lamp wick of the Fresnel lens', expected: [`e${n}-bread.md`] }] });

async function publish(n: number, acceptance?: AcceptanceSpec) {
  const { documents } = await loadDocuments(await writeEditionDocs(root, n));
  const chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
  return publishSharedVersion({ url: chroma.url, name: 'docs', chunks, model: await testModel(), version: `v${n}`, keepVersions: 10, replicaTtlMs: 60_000, ...(acceptance ? { acceptance } : {}) });
}

function ingest(args: string[]) {
  return run(process.execPath, [CLI, ...args, '--quiet'], { env: { ...process.env, MODELS_DIR: join(ROOT, 'models'), MODEL_NAME, LOG_LEVEL: 'silent' } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

const status = (svc: TestService) => getJson(`${svc.url}/admin/status`);
const served = async (svc: TestService) => ((await getJson(`${svc.url}/readyz`)) as { store?: { version?: string } | null }).store?.version ?? null;
const allServe = (v: string) => waitFor(async () => (await Promise.all(replicas.map(served))).every((s) => s === v), 60_000, `all replicas serving ${v}`);
/** Each replica's newest attempt for this version, once it has one with this outcome. */
const attemptsFor = (version: string, outcome: string) =>
  waitFor(
    async () => {
      const found = await Promise.all(replicas.map(async (r) => (await status(r)).history.find((a: { storeVersion: string; outcome: string }) => a.storeVersion === version && a.outcome === outcome)));
      return found.every(Boolean) ? found : null;
    },
    60_000,
    `every replica's ${outcome} attempt on ${version}`,
  );

beforeAll(async () => {
  const t = await tempDir('rag-t-shared-acc-');
  root = t.dir;
  cleanup = t.cleanup;
  chroma = new ChromaServer({ dataDir: join(root, 'chroma'), logger, restart: false });
  await chroma.start();
  registry = await SharedRegistry.open(chroma.url);
  await publish(1); // no acceptance questions: served as before
  for (let i = 0; i < 2; i++) {
    replicas.push(await startTestService({ store: false, env: { CHROMA_URL: chroma.url, STORE_NAME: 'docs', POINTER_POLL_MS: '200', REPLICA_ID: `acc${i}` } }));
  }
}, 180_000);
afterAll(async () => {
  for (const r of replicas) await r.stop();
  await chroma?.stop();
  await cleanup?.();
});

describe('shared mode: acceptance questions travel with the version and gate every replica', () => {
  it('a version published without questions is served as before (no acceptance result)', async () => {
    await allServe('v1');
    for (const r of replicas) expect((await status(r)).acceptance).toBeNull();
    expect((await registry.versionInfo('docs', 'v1'))!.acceptanceSha256).toBeNull();
  });

  it('a hostile --acceptance file is refused by the CLI with RAG_INGEST_ACCEPTANCE_INVALID, and nothing is published', async () => {
    const dir = join(root, 'hostile');
    await mkdir(dir, { recursive: true });
    const docs = await writeEditionDocs(root, 2);
    const file = async (name: string, content: string | Buffer) => {
      await writeFile(join(dir, name), content);
      return join(dir, name);
    };
    const fifo = join(dir, 'pipe.json');
    execFileSync('mkfifo', [fifo]);
    const cases: Array<[string, RegExp]> = [
      [join(dir, 'missing.json'), /missing\.json: does not exist/],
      [dir, /hostile is a folder, not a regular file/],
      [fifo, /is a named pipe|not a regular file/],
      [await file('big.json', Buffer.alloc((1 << 20) + 1, 0x20)), /has 1048577 bytes; at most 1048576 are read/],
      [await file('latin1.json', Buffer.from('{"minRecall":1,"questions":[{"question":"caf\xe9","expected":["a"]}]}', 'latin1')), /is not valid UTF-8 text/],
      [await file('truncated.json', JSON.stringify(good(2)).slice(0, 40)), /is not valid JSON/],
      [await file('array.json', '[]'), /is invalid: \(root\): Expected object, received array/],
      [await file('no-questions.json', '{"minRecall":0.5,"questions":[]}'), /questions: Array must contain at least 1 element/],
      [await file('recall.json', JSON.stringify({ ...good(2), minRecall: 1.5 })), /minRecall: Number must be less than or equal to 1/],
      [await file('k.json', JSON.stringify({ ...good(2), k: 0 })), /k: Number must be greater than or equal to 1/],
      [await file('typo.json', JSON.stringify({ ...good(2), minrecall: 0.9 })), /Unrecognized key\(s\) in object: 'minrecall'/],
      [await file('surrogate.json', '{"minRecall":1,"questions":[{"question":"\\ud800 lone","expected":["e2-bread.md"]}]}'), /questions\.0\.question: contains a lone UTF-16 surrogate/],
      [await file('proto.json', '{"minRecall":1,"__proto__":{"k":7},"questions":[{"question":"q","expected":["e2-bread.md"]}]}'), /Unrecognized key\(s\) in object: '__proto__'/],
      [await file('unknown-id.json', JSON.stringify({ ...good(2), questions: [{ question: 'lighthouse', expected: ['e2-lighthouse.md', 'no-such-doc.md'] }] })), /questions\.0\.expected: "no-such-doc\.md" is neither a chunk id nor a document/],
    ];
    for (const [path, message] of cases) {
      const r = await ingest([docs, '--chroma-url', chroma.url, '--name', 'docs', '--version', 'v2', '--acceptance', path]);
      expect(r.code, `${path}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(/^ingest failed: \[RAG_INGEST_ACCEPTANCE_INVALID\] acceptance file /);
      expect(r.stderr).toMatch(message);
    }
    // An acceptance.json at the top of the docs folder is the version's questions too, validated the same way.
    await writeFile(join(docs, 'acceptance.json'), '{"minRecall": 1, "questions": [{"question": "q", "expected": []}]}');
    const r = await ingest([docs, '--chroma-url', chroma.url, '--name', 'docs', '--version', 'v2']);
    expect(r.stderr).toMatch(/^ingest failed: \[RAG_INGEST_ACCEPTANCE_INVALID\] acceptance file .*acceptance\.json is invalid: questions\.0\.expected: Array must contain at least 1 element/);
    // Nothing was written: no v2 collection, no acceptance record, the pointer still on v1.
    expect((await registry.versions('docs')).map((v) => v.version)).toEqual(['v1']);
    expect((await registry.readPointer('docs'))!.version).toBe('v1');
    const records = await registry.client.getCollection({ name: REGISTRY_COLLECTION, embeddingFunction: null as never });
    expect((await records.get({ where: { kind: 'acceptance' } as never })).ids).toEqual([]);
    await allServe('v1');
  }, 120_000);

  it('a version whose questions pass (published by the CLI): every replica serves it and its status shows the passed result', async () => {
    const docs = await writeEditionDocs(root, 3);
    const file = join(root, 'good-3.json');
    await writeFile(file, JSON.stringify(good(3)));
    const r = await ingest([docs, '--chroma-url', chroma.url, '--name', 'docs', '--version', 'v3', '--acceptance', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/acceptance: 2 questions from .*good-3\.json \(recall@1 >= 1\)/);
    expect(r.stdout).toMatch(/published docs--v3 \(\d+ chunks, sha256 [0-9a-f]{12}, acceptance sha256 [0-9a-f]{12}\) and pointed "docs" at v3/);
    expect((await registry.versionInfo('docs', 'v3'))!.acceptanceSha256).toMatch(/^[0-9a-f]{64}$/);
    await allServe('v3');
    const accepted = await attemptsFor('v3', 'accepted');
    for (const [i, rep] of replicas.entries()) {
      expect((await status(rep)).acceptance).toEqual({ attempt: accepted[i].id, storeVersion: 'v3', passed: true, code: null, k: 1, minRecall: 1, recall: 1, questions: 2, failed: [] });
    }
  }, 120_000);

  it('a version whose questions fail: every replica refuses it with RAG_STORE_ACCEPTANCE_FAILED and keeps serving the previous version', async () => {
    // The console's reload timeline is fed by /admin/events: the refusal arrives there with its code.
    const ctl = new AbortController();
    const events: Array<{ type: string; data: any }> = [];
    readServerSentEvents(`${replicas[0]!.url}/admin/events`, (type, data) => events.push({ type, data }), ctl.signal);
    await waitFor(() => events.some((e) => e.type === 'status'), 10_000, 'the event stream open');
    await publish(4, failing(4));
    const rejected = await attemptsFor('v4', 'rejected');
    try {
      const live = await waitFor(() => events.find((e) => e.type === 'reload.rejected' && e.data.attempt.storeVersion === 'v4'), 10_000, 'reload.rejected for v4');
      expect(live.data.attempt).toMatchObject({ id: rejected[0].id, outcome: 'rejected', error: { code: 'RAG_STORE_ACCEPTANCE_FAILED' } });
    } finally {
      ctl.abort();
    }
    for (const [i, rep] of replicas.entries()) {
      const s = await status(rep);
      expect(rejected[i].error).toEqual({ code: 'RAG_STORE_ACCEPTANCE_FAILED', message: 'store v4 fails its own acceptance questions: recall@1 0 is below the minimum 0.5 over 1 questions' });
      expect(s.lastError).toMatchObject({ id: rejected[i].id, outcome: 'rejected', storeVersion: 'v4', error: { code: 'RAG_STORE_ACCEPTANCE_FAILED' } });
      expect(s.acceptance).toMatchObject({ attempt: rejected[i].id, storeVersion: 'v4', passed: false, code: 'RAG_STORE_ACCEPTANCE_FAILED', k: 1, minRecall: 0.5, recall: 0, questions: 1 });
      expect(s.active.store.version).toBe('v3');
      const res = await postJson(`${rep.url}/v1/retrieve`, { question: 'lighthouse keeper edition', k: 1, mode: 'dense' });
      expect(res.status).toBe(200);
      expect(res.body.sources[0].text).toContain('edition 3');
    }
    await allServe('v3');
  }, 120_000);

  it('a registry record changed after publishing (sha256 mismatch) is refused by every replica; truncated or deleted records are refused too', async () => {
    await publish(5, good(5));
    await allServe('v5');
    // v3's record is edited to a gate that would pass anything, then the pointer is moved to v3.
    const records = await registry.client.getCollection({ name: REGISTRY_COLLECTION, embeddingFunction: null as never });
    await records.update({ ids: ['acceptance/docs/v3'], embeddings: [[0]], documents: [JSON.stringify({ ...good(3), minRecall: 0 })] });
    await registry.flipPointer('docs', 'v3', 'v5');
    const rejected = await attemptsFor('v3', 'rejected');
    for (const [i, rep] of replicas.entries()) {
      expect(rejected[i].error.code).toBe('RAG_SHARED_ACCEPTANCE_MISMATCH');
      expect(rejected[i].error.message).toMatch(/^the acceptance questions of version v3 of "docs" changed after publishing: record acceptance\/docs\/v3 \(\d+ bytes\) has sha256 [0-9a-f]{12}, the version was published with [0-9a-f]{12}/);
      expect((await status(rep)).acceptance).toMatchObject({ attempt: rejected[i].id, storeVersion: 'v3', passed: false, code: 'RAG_SHARED_ACCEPTANCE_MISMATCH' });
    }
    await allServe('v5');

    // The registry read itself: a truncated record and a deleted one.
    const sha = (await registry.versionInfo('docs', 'v5'))!.acceptanceSha256!;
    const text = await registry.readAcceptance('docs', 'v5', sha);
    expect(JSON.parse(text)).toEqual(good(5));
    await records.update({ ids: ['acceptance/docs/v5'], embeddings: [[0]], documents: [text.slice(0, text.length - 10)] });
    await expect(registry.readAcceptance('docs', 'v5', sha)).rejects.toMatchObject({ code: 'RAG_SHARED_ACCEPTANCE_MISMATCH' });
    await records.delete({ ids: ['acceptance/docs/v5'] });
    await expect(registry.readAcceptance('docs', 'v5', sha)).rejects.toMatchObject({ code: 'RAG_SHARED_ACCEPTANCE_MISSING', message: expect.stringMatching(/^version v5 of "docs" was published with acceptance questions .* but the registry has no record acceptance\/docs\/v5; publish the version again$/) });
  }, 120_000);

  it('garbage collection deletes a version\'s acceptance record with its collection', async () => {
    const before = await registry.client.getCollection({ name: REGISTRY_COLLECTION, embeddingFunction: null as never });
    expect((await before.get({ ids: ['acceptance/docs/v4'] })).ids).toEqual(['acceptance/docs/v4']);
    // keep 1: the pointer (v3), its previous (v5) and what the replicas serve (v5) stay; v1 and v4 go.
    const deleted = await registry.collectGarbage('docs', { keep: 1, replicaTtlMs: 60_000 });
    expect(deleted).toEqual(['docs--v1', 'docs--v4']);
    expect((await before.get({ ids: ['acceptance/docs/v4', 'acceptance/docs/v3'] })).ids).toEqual(['acceptance/docs/v3']);
  });

  it('the same flag for a local store: the docs folder\'s acceptance.json becomes the version\'s acceptance.json, listed in its manifest', async () => {
    const docs = await writeEditionDocs(root, 7);
    await writeFile(join(docs, 'acceptance.json'), JSON.stringify({ questions: good(7).questions, minRecall: 1, k: 1 }, null, 2));
    const out = join(root, 'local-store');
    const r = await ingest([docs, '--out', out, '--version', 'l7']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/acceptance: 2 questions from .*edition-docs-7\/acceptance\.json/);
    const manifest = JSON.parse(await readFile(join(out, 'l7', 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest.files)).toContain('acceptance.json');
    expect(JSON.parse(await readFile(join(out, 'l7', 'acceptance.json'), 'utf8'))).toEqual(good(7));
    // Not a document of the version.
    expect(manifest.chunkCount).toBe(2);
  }, 60_000);
});
