import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLlm } from '../helpers/fake-llm.js';
import { chromaProcessesUnder, copyModelInto, FIXTURES, postJson, publishDocs, ROOT, tempDir, waitFor } from '../helpers/harness.js';

describe('SIGTERM under load (the real process, node dist/src/main.js)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let llm: Awaited<ReturnType<typeof startFakeLlm>>;
  beforeAll(async () => {
    tmp = await tempDir();
    await copyModelInto(join(tmp.dir, 'models'));
    await publishDocs(join(tmp.dir, 'vectorstore'), join(FIXTURES, 'docs-a'));
    // Slow answers (the fake upstream takes 400 ms) so requests are really in flight at SIGTERM.
    llm = await startFakeLlm({ delayMs: 400 });
  });
  afterAll(async () => {
    await llm?.close();
    await tmp?.cleanup();
  });

  it('lets every in-flight request finish, refuses new ones cleanly, exits 0 and leaves no Chroma child', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
      env: {
        ...process.env,
        PORT: String(port),
        LOG_LEVEL: 'info',
        MODELS_DIR: join(tmp.dir, 'models'),
        VECTORSTORE_DIR: join(tmp.dir, 'vectorstore'),
        RUNTIME_DIR: join(tmp.dir, 'runtime'),
        AUDIT_LOG_DIR: join(tmp.dir, 'audit'),
        LLM_BASE_URL: llm.url,
        // Keep the store's Chroma child (the path above the in-process budget): the test proves it is stopped.
        SERVE_INDEX_MAX_MB: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logs: string[] = [];
    child.stdout.on('data', (b: Buffer) => logs.push(b.toString()));
    child.stderr.on('data', (b: Buffer) => logs.push(b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 30_000, 'ready');
    expect(chromaProcessesUnder(join(tmp.dir, 'runtime'))).toBe(1);

    // 12 requests in flight, each waiting on the slow upstream.
    const inflight = Array.from({ length: 12 }, () => postJson(`${url}/v1/query`, { question: 'Who invented the lighthouse lens?' }).catch((e: Error) => ({ status: 0, body: String(e), headers: new Headers() })));
    await waitFor(() => llm.requests.length >= 12, 10_000, 'requests at the upstream');
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    // A request that arrives while draining is refused cleanly (503 or connection refused), never hangs.
    const late = await postJson(`${url}/v1/query`, { question: 'late' }).catch((e: Error) => ({ status: 0, body: { error: { code: String(e) } }, headers: new Headers() }));
    expect([0, 503]).toContain(late.status);
    if (late.status === 503) expect(late.body.error.code).toBe('RAG_SHUTTING_DOWN');

    const results = await Promise.all(inflight);
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
    for (const r of results) expect((r.body as { answer: string }).answer).toBe(llm.reply);
    expect(await exited).toBe(0);
    expect(chromaProcessesUnder(join(tmp.dir, 'runtime'))).toBe(0);
    expect(logs.join('')).toContain('"msg":"stopped"');
  });
});
