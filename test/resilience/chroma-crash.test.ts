import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestService, waitFor, type TestService } from '../helpers/harness.js';

describe('the Chroma child killed with SIGKILL under load', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('requests get a clean 503 (no hang), the child is restarted, serving recovers, and no error reaches a client after', async () => {
    const server = svc.service.manager.current!.store.server!;
    const pid = server.pid!;
    type R = { start: number; end: number; status: number; code?: string };
    const seen: R[] = [];
    let stop = false;
    let killedAt = 0;
    const worker = async () => {
      while (!stop) {
        const start = Date.now();
        const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse lens keeper', k: 3 });
        seen.push({ start, end: Date.now(), status: res.status, code: res.body?.error?.code });
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((r) => setTimeout(r, 500));
    killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    await waitFor(() => server.restarts === 1 && server.state === 'running', 10_000, 'the restart');
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await Promise.all(workers);

    expect(server.pid).not.toBe(pid);
    const after = seen.filter((r) => r.start >= killedAt);
    const failures = after.filter((r) => r.status !== 200);
    // Failures are clean 503s with a store code, and fast.
    for (const f of failures) {
      expect(f.status).toBe(503);
      // UNAVAILABLE when the query hit the dead child, UNHEALTHY when it arrived while the child restarts.
      expect(['RAG_STORE_UNAVAILABLE', 'RAG_STORE_UNHEALTHY']).toContain(f.code);
      expect(f.end - f.start).toBeLessThan(10_000); // no hang (generous: the machine is shared; figures live in bench/)
    }
    // Recovery: a success came soon after the kill (no hang; bench/reload-probe measures how soon), and nothing failed after it.
    const firstOk = after.find((r) => r.status === 200)!;
    expect(firstOk.end - killedAt).toBeLessThan(15_000);
    const lastFailure = Math.max(0, ...failures.map((f) => f.end));
    expect(after.filter((r) => r.start > lastFailure && r.status !== 200)).toEqual([]);
    expect(after.filter((r) => r.status === 200).length).toBeGreaterThan(20);
    expect(seen.filter((r) => r.start < killedAt && r.end < killedAt).every((r) => r.status === 200)).toBe(true);
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(/rag_chroma_restarts_total 1/);
  });
});
