import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { AutoTokenizer, env } from '@huggingface/transformers';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceWithFakeLlm, type FakeLlm } from '../helpers/fake-llm.js';
import { MODEL_NAME, ROOT, startTestService, waitFor, type TestService } from '../helpers/harness.js';

const QUESTION = 'Who invented the lighthouse lens?';

/** Token counts from transformers.js' own AutoTokenizer over the served model folder (independent of our counter). */
async function referenceCounter(): Promise<(text: string) => number> {
  env.allowRemoteModels = false;
  env.localModelPath = join(ROOT, 'models');
  const tok = await AutoTokenizer.from_pretrained(MODEL_NAME, { local_files_only: true });
  return (text: string) => tok.encode(text, { add_special_tokens: false }).length;
}

async function auditLines(dir: string): Promise<Array<Record<string, any>>> {
  const lines: Array<Record<string, any>> = [];
  for (const f of await readdir(dir)) {
    if (!/^audit.*\.log(\.gz)?$/.test(f)) continue;
    const raw = await readFile(join(dir, f)).catch(() => null);
    if (!raw) continue;
    const text = f.endsWith('.gz') ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    for (const l of text.split('\n')) if (l.trim()) lines.push(JSON.parse(l));
  }
  return lines;
}

async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

describe('OpenAI compatibility offline (extractive answers, no LLM_BASE_URL)', () => {
  let svc: TestService;
  let client: OpenAI;
  let count: (text: string) => number;
  beforeAll(async () => {
    svc = await startTestService();
    client = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    count = await referenceCounter();
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('usage counts prompt and completion tokens with the served tokenizer', async () => {
    const res = await client.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: QUESTION }] });
    const answer = res.choices[0]!.message.content!;
    expect(answer.length).toBeGreaterThan(0);
    expect(res.usage).toEqual({ prompt_tokens: count(QUESTION), completion_tokens: count(answer), total_tokens: count(QUESTION) + count(answer) });
    expect(res.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('stream_options.include_usage sends a final chunk with the usage (and usage: null before it)', async () => {
    const whole = await client.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: QUESTION }] });
    const chunks = await collect(await client.chat.completions.create({ model: 'rag', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: QUESTION }] }));
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual(whole.usage);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(whole.choices[0]!.message.content);
    // Without include_usage: no usage chunk.
    const plain = await collect(await client.chat.completions.create({ model: 'rag', stream: true, messages: [{ role: 'user', content: QUESTION }] }));
    expect(plain.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
  });

  it('max_tokens cuts the answer at that many tokens (finish_reason length); stop cuts at the sequence', async () => {
    const res = await client.chat.completions.create({ model: 'rag', max_tokens: 5, messages: [{ role: 'user', content: QUESTION }] });
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(res.usage!.completion_tokens).toBeLessThanOrEqual(5);
    expect(res.usage!.completion_tokens).toBe(count(res.choices[0]!.message.content!));
    const full = (await client.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: QUESTION }] })).choices[0]!.message.content!;
    const word = full.split(/\s+/)[2]!;
    const stopped = await client.chat.completions.create({ model: 'rag', stop: [word], messages: [{ role: 'user', content: QUESTION }] });
    expect(stopped.choices[0]!.message.content).toBe(full.slice(0, full.indexOf(word)));
  });

  it.each([
    ['tools', { tools: [{ type: 'function', function: { name: 'search', parameters: { type: 'object', properties: {} } } }] }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['n', { n: 2 }],
    ['logprobs', { logprobs: true }],
    ['top_logprobs', { logprobs: false, top_logprobs: 3 }],
  ] as const)('rejects %s with a 400 naming it (it cannot be honoured offline)', async (param, extra) => {
    const err = await client.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: QUESTION }], ...(extra as object) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.code).toBe('RAG_HTTP_UNSUPPORTED_PARAMETER');
    expect(e.param).toBe(param);
    expect(e.message).toContain(`${param}: not supported when answering offline`);
  });

  it('accepts the no-op forms (n: 1, logprobs: false, response_format text, empty tools)', async () => {
    const res = await client.chat.completions.create({ model: 'rag', n: 1, logprobs: false, response_format: { type: 'text' }, tools: [], messages: [{ role: 'user', content: QUESTION }] });
    expect(res.choices).toHaveLength(1);
  });

  it('an unknown model is the same 404 on chat and on embeddings', async () => {
    const chat = (await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: QUESTION }] }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.NotFoundError>;
    const emb = (await client.embeddings.create({ model: 'gpt-4o', input: 'x' }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.NotFoundError>;
    for (const e of [chat, emb]) {
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect(e.code).toBe('RAG_HTTP_UNKNOWN_MODEL');
      expect(e.param).toBe('model');
      expect(e.message).toMatch(/^404 model "gpt-4o" is not served here; use ".+" \(see GET \/v1\/models\)$/);
    }
    expect(chat.message).toContain('use "rag"');
    expect(emb.message).toContain(`use "${MODEL_NAME}" or "rag"`);
  });

  it('embeddings usage counts the input tokens', async () => {
    const input = ['a kitten on the rug', 'stock markets fell sharply'];
    const res = await client.embeddings.create({ model: MODEL_NAME, input });
    const n = count(input[0]!) + count(input[1]!);
    expect(res.usage).toEqual({ prompt_tokens: n, total_tokens: n });
  });
});

describe('OpenAI compatibility with an upstream (LLM_BASE_URL, LangChain initChatModel)', () => {
  let llm: FakeLlm;
  let svc: TestService;
  let stop: (() => Promise<void>) | undefined;
  let client: OpenAI;
  beforeAll(async () => {
    ({ llm, svc, stop } = await startServiceWithFakeLlm({ usage: { prompt_tokens: 321, completion_tokens: 12 } }, { LLM_MODEL: 'llama3', LLM_API_KEY: 'sk-upstream-secret' }));
    client = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(() => stop?.());

  it("usage is the upstream's own count", async () => {
    const res = await client.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: QUESTION }] });
    expect(res.choices[0]!.message.content).toBe(llm.reply);
    expect(res.usage).toEqual({ prompt_tokens: 321, completion_tokens: 12, total_tokens: 333 });
  });

  it("stream_options.include_usage ends with the upstream's usage", async () => {
    const chunks = await collect(await client.chat.completions.create({ model: 'llama3', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: QUESTION }] }));
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(llm.reply);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 321, completion_tokens: 12, total_tokens: 333 });
    expect(llm.requests.at(-1)!.body.stream_options).toEqual({ include_usage: true });
  });

  it('passes tools, tool_choice, response_format, n, logprobs, seed and stop through verbatim and returns what the upstream answered', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'search_docs', description: 'search', parameters: { type: 'object', properties: { query: { type: 'string' } } } } }];
    const withTools = await client.chat.completions.create({ model: 'rag', tools, tool_choice: 'auto', messages: [{ role: 'user', content: QUESTION }] });
    expect(llm.requests.at(-1)!.body.tools).toEqual(tools);
    expect(llm.requests.at(-1)!.body.tool_choice).toBe('auto');
    expect(withTools.choices[0]!.finish_reason).toBe('tool_calls');
    expect(withTools.choices[0]!.message.tool_calls).toEqual([{ id: 'call_1', type: 'function', function: { name: 'search_docs', arguments: '{"query":"lens"}' } }]);

    const many = await client.chat.completions.create({ model: 'rag', n: 2, logprobs: true, seed: 7, stop: ['###'], messages: [{ role: 'user', content: QUESTION }] });
    expect(llm.requests.at(-1)!.body).toMatchObject({ n: 2, logprobs: true, seed: 7, stop: ['###'] });
    expect(many.choices.map((c) => c.message.content)).toEqual([llm.reply, `${llm.reply} (1)`]);
    expect(many.choices[0]!.logprobs).toEqual({ content: [{ token: 'The', logprob: -0.25, bytes: [84, 104, 101], top_logprobs: [] }], refusal: null });

    const json = await client.chat.completions.create({ model: 'rag', response_format: { type: 'json_object' }, messages: [{ role: 'user', content: QUESTION }] });
    expect(llm.requests.at(-1)!.body.response_format).toEqual({ type: 'json_object' });
    expect(JSON.parse(json.choices[0]!.message.content!)).toEqual({ answer: llm.reply });
  });

  it('streams tool calls through; n > 1 with stream is a 400 naming n', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'search_docs', parameters: { type: 'object', properties: {} } } }];
    const chunks = await collect(await client.chat.completions.create({ model: 'rag', stream: true, tools, messages: [{ role: 'user', content: QUESTION }] }));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, id: 'call_1', type: 'function', function: { name: 'search_docs', arguments: '{"query":"lens"}' } });
    const err = (await client.chat.completions.create({ model: 'rag', stream: true, n: 2, messages: [{ role: 'user', content: QUESTION }] }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.BadRequestError>;
    expect(err.status).toBe(400);
    expect(err.param).toBe('n');
  });

  it('the upstream model name (LLM_MODEL) is served on chat; an unknown one is the same 404 as on embeddings', async () => {
    await expect(client.chat.completions.create({ model: 'llama3', messages: [{ role: 'user', content: QUESTION }] })).resolves.toMatchObject({ model: 'llama3' });
    const err = (await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: QUESTION }] }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.NotFoundError>;
    expect(err.status).toBe(404);
    expect(err.message).toBe('404 model "gpt-4o" is not served here; use "rag" or "llama3" (see GET /v1/models)');
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['rag', 'llama3', MODEL_NAME]);
  });

  it('audits every upstream call: the body sent (redacted), status, latency and the request id that caused it', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { api_key: { type: 'string' } } } } }];
    const { response } = await client.chat.completions
      .create({ model: 'rag', tools, messages: [{ role: 'user', content: QUESTION }] }, { headers: { 'x-request-id': 'req-audit-1' } })
      .withResponse();
    expect(response.headers.get('x-request-id')).toBe('req-audit-1');
    expect(llm.requests.at(-1)!.headers['x-request-id']).toBe('req-audit-1');
    const line = await waitFor(async () => (await auditLines(svc.dirs.audit)).find((l) => l.kind === 'upstream' && l.requestId === 'req-audit-1'), 10_000, 'the upstream audit line');
    expect(line).toMatchObject({ provider: 'openai', method: 'POST', url: `${llm.url}/chat/completions`, status: 200, error: null });
    expect(line.latencyMs).toBeGreaterThan(0);
    expect(line.body.model).toBe('llama3');
    expect(line.body.messages[1]).toEqual({ role: 'user', content: QUESTION });
    // Exactly what was sent, with secret-named keys redacted like request bodies.
    expect(line.body.tools[0].function.parameters.properties.api_key).toBe('[redacted]');
    expect(JSON.stringify(line)).not.toContain('sk-upstream-secret');
  });
});

describe('an upstream that fails is audited with its status and error', () => {
  let svc: TestService;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ svc, stop } = await startServiceWithFakeLlm({ fail: 500 })));
  afterAll(() => stop?.());

  it('502 to the client; the audit log has the upstream status, its error body and the request id', async () => {
    const client = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const err = (await client.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: QUESTION }] }, { headers: { 'x-request-id': 'req-fail-1' } }).catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>;
    expect(err.status).toBe(502);
    expect(err.code).toBe('RAG_LLM_UPSTREAM_FAILED');
    const lines = await waitFor(async () => {
      const l = (await auditLines(svc.dirs.audit)).filter((x) => x.kind === 'upstream' && x.requestId === 'req-fail-1');
      return l.length >= 1 ? l : null;
    }, 10_000, 'the upstream audit lines');
    for (const l of lines) {
      expect(l.status).toBe(500);
      expect(l.error).toContain('upstream exploded');
    }
  });
});
