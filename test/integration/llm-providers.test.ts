import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createChatModel, type UpstreamCall } from '../../src/rag/chat-model.js';
import { LlmAnswerer } from '../../src/rag/llm-answerer.js';

/** A fake Ollama native API (POST /api/chat, NDJSON when streaming): an external service we do not ship. */
async function startFakeOllama() {
  const bodies: Array<Record<string, any>> = [];
  const app = express();
  app.use(express.json());
  app.post('/api/chat', (req, res) => {
    bodies.push(req.body);
    const base = { model: req.body.model, created_at: new Date().toISOString() };
    const words = ['The ', 'Fresnel ', 'lens [1].'];
    const last = { ...base, message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 42, eval_count: 3 };
    if (req.body.stream === false) {
      res.json({ ...last, message: { role: 'assistant', content: words.join('') } });
      return;
    }
    res.setHeader('content-type', 'application/x-ndjson');
    for (const w of words) res.write(`${JSON.stringify({ ...base, message: { role: 'assistant', content: w }, done: false })}\n`);
    res.end(`${JSON.stringify(last)}\n`);
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('LLM_PROVIDER: initChatModel builds the upstream chat model', () => {
  let ollama: Awaited<ReturnType<typeof startFakeOllama>>;
  beforeAll(async () => {
    ollama = await startFakeOllama();
  });
  afterAll(async () => {
    await ollama?.close();
  });

  it('openai (default) builds ChatOpenAI from LLM_MODEL / LLM_BASE_URL', async () => {
    const model = await createChatModel(loadConfig({ LLM_BASE_URL: 'http://127.0.0.1:9/v1', LLM_MODEL: 'qwen2.5' }));
    const inner = await (model as unknown as { _getModelInstance(c?: unknown): Promise<{ constructor: { name: string }; model: string }> })._getModelInstance();
    expect(inner.constructor.name).toBe('ChatOpenAI');
    expect(inner.model).toBe('qwen2.5');
  });

  it("ollama speaks Ollama's native API, with usage from its counts, and every call audited", async () => {
    const calls: UpstreamCall[] = [];
    const config = loadConfig({ LLM_PROVIDER: 'ollama', LLM_BASE_URL: ollama.url, LLM_MODEL: 'llama3.2', LLM_MAX_TOKENS: '64' });
    const answerer = new LlmAnswerer(config, (c) => calls.push(c));
    const sources = [{ id: 'a', text: 'Augustin Fresnel invented the lens.', score: 1, metadata: { source: 'lighthouses.md' } }];
    const reply = await answerer.answer('Who invented the lens?', sources as never, { requestId: 'req-ollama-1' });
    expect(reply.choices[0]!.content).toBe('The Fresnel lens [1].');
    expect(reply.usage).toEqual({ prompt_tokens: 42, completion_tokens: 3, total_tokens: 45 });
    const sent = ollama.bodies.at(-1)!;
    expect(sent.model).toBe('llama3.2');
    expect(sent.options.num_predict).toBe(64);
    expect(sent.messages[0].content).toContain('[1] (source: lighthouses.md)');
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ provider: 'ollama', requestId: 'req-ollama-1', method: 'POST', url: `${ollama.url}/api/chat`, status: 200, error: null });
    expect((calls[0]!.body as { model: string }).model).toBe('llama3.2');
  });
});
