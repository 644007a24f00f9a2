import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceWithFakeLlm, type FakeLlm } from '../helpers/fake-llm.js';
import { postJson, type TestService } from '../helpers/harness.js';

describe('answers from an OpenAI-compatible upstream (LLM_BASE_URL)', () => {
  let llm: FakeLlm;
  let svc: TestService;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ llm, svc, stop } = await startServiceWithFakeLlm({}, { LLM_MODEL: 'llama3' })));
  afterAll(() => stop?.());

  it('sends a LangChain prompt with the numbered retrieved context and returns the upstream answer', async () => {
    const res = await postJson(`${svc.url}/v1/query`, { question: 'Who invented the lighthouse lens?' });
    expect(res.status).toBe(200);
    expect(res.body.answer).toBe(llm.reply);
    expect(res.body.answerer).toBe('llm');
    expect(res.body.sources[0].metadata.source).toBe('lighthouses.md');
    const sent = llm.requests.at(-1)!;
    expect(sent.model).toBe('llama3');
    expect(sent.messages[0]!.role).toBe('system');
    expect(sent.messages[0]!.content).toContain('[1] (source: lighthouses.md)');
    expect(sent.messages[0]!.content).toContain('Fresnel');
    expect(sent.messages[1]).toMatchObject({ role: 'user', content: 'Who invented the lighthouse lens?' });
  });

  it('streams the upstream tokens through /v1/chat/completions', async () => {
    const client = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'rag', stream: true, messages: [{ role: 'user', content: 'Who invented the lighthouse lens?' }] });
    const pieces: string[] = [];
    for await (const chunk of stream) {
      const c = chunk.choices[0]?.delta?.content;
      if (c) pieces.push(c);
    }
    expect(pieces.join('')).toBe(llm.reply);
    expect(pieces.length).toBeGreaterThan(3);
    expect(llm.requests.at(-1)!.stream).toBe(true);
  });
});

describe('a failing upstream', () => {
  let svc: TestService;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ svc, stop } = await startServiceWithFakeLlm({ fail: 500 })));
  afterAll(() => stop?.());

  it('is a 502 with RAG_LLM_UPSTREAM_FAILED, and retrieval still works', async () => {
    const res = await postJson(`${svc.url}/v1/query`, { question: 'lighthouse lens' });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('RAG_LLM_UPSTREAM_FAILED');
    expect(res.body.error.message).toMatch(/upstream/);
    const ok = await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse lens' });
    expect(ok.status).toBe(200);
  });
});

describe('a client that goes away', () => {
  let llm: FakeLlm;
  let svc: TestService;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ llm, svc, stop } = await startServiceWithFakeLlm({ delayMs: 8000 })));
  afterAll(() => stop?.());

  it('aborts the upstream call it was waiting on (the signal is made when the route first reads it)', async () => {
    const client = new AbortController();
    const pending = fetch(`${svc.url}/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question: 'lighthouse lens' }), signal: client.signal }).catch(() => null);
    const until = async (ok: () => boolean, ms: number) => {
      for (const end = Date.now() + ms; !ok() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    expect(await until(() => llm.calls.received === 1, 5000)).toBe(true);
    client.abort();
    await pending;
    // Well before the upstream's 8 s answer: the service closed its request to the upstream.
    expect(await until(() => llm.calls.closedEarly === 1, 3000)).toBe(true);
    // And it still serves.
    expect((await postJson(`${svc.url}/v1/retrieve`, { question: 'lighthouse lens' })).status).toBe(200);
  });
});
