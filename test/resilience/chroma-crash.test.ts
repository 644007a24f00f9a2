import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestService, waitFor, type TestService } from '../helpers/harness.js';

describe('the Chroma child killed with SIGKILL under load (a store served by its Chroma child)', () => {
  let svc: TestService;
  beforeAll(async () => {
    // SERVE_INDEX_MAX_MB=0: every store keeps its Chroma child (the path for stores above the budget).
    svc = await startTestService({ env: { SERVE_INDEX_MAX_MB: '0' } });
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('requests get 503 quickly (no hang), the child is restarted, serving recovers, and no error reaches a client after', async () => {
    expect(svc.service.manager.current!.store.store.describe().kind).toBe('chroma-child');
    const server = svc.service.manager.current!.store.server!;
    const pid = server.pid!;
    type R = { start: number; end: number; status: number; code?: string; message?: string };
    const seen: R[] = [];
    let stop = false;
    let killedAt = 0;
    const worker = async () => {
      while (!stop) {
        const start = Date.now();
        const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse lens keeper', k: 3 });
        seen.push({ start, end: Date.now(), status: res.status, code: res.body?.error?.code, message: res.body?.error?.message });
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
      // Unavailable (the query failed) or unhealthy (missed heartbeats, being restarted).
      expect(['RAG_STORE_UNAVAILABLE', 'RAG_STORE_UNHEALTHY']).toContain(f.code);
      // Never the child's address, the runtime folder or a collection id.
      expect(f.message).not.toMatch(/https?:\/\/|127\.0\.0\.1|:\d{4,5}\b|\/runtime\/|[0-9a-f]{8}-[0-9a-f]{4}-/);
      // No hang: bounded by the store query timeout (speed belongs in bench/, this machine is shared).
      expect(f.end - f.start).toBeLessThan(svc.config.storeQueryTimeoutMs + 5000);
    }
    // Recovery: a success came after the kill (how fast is measured in bench/, not asserted here), and
    // nothing failed after it.
    const firstOk = after.find((r) => r.status === 200)!;
    expect(firstOk).toBeDefined();
    const lastFailure = Math.max(0, ...failures.map((f) => f.end));
    expect(after.filter((r) => r.start > lastFailure && r.status !== 200)).toEqual([]);
    expect(after.filter((r) => r.status === 200).length).toBeGreaterThan(20);
    expect(seen.filter((r) => r.start < killedAt && r.end < killedAt).every((r) => r.status === 200)).toBe(true);
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(/rag_chroma_restarts_total 1/);
  });
});
