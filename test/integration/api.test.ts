import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { liveChromaChildren } from '../../src/store/chroma-server.js';
import { postJson, startTestService, type TestService } from '../helpers/harness.js';

const FIXTURE_SOURCES = ['lighthouses.md', 'bread.txt', 'volcanoes.html'];
let svc: TestService;
let openai: OpenAI;

beforeAll(async () => {
  svc = await startTestService();
  openai = new OpenAI({ baseURL: `${svc.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await svc?.stop();
  // The service owned every Chroma child it started, and stopped them all.
  expect(liveChromaChildren()).toBe(0);
});

describe('query and retrieve (real model, real Chroma child, real socket)', () => {
  it('answers with citations and sources from the store', async () => {
    const res = await postJson(`${svc.url}/v1/query`, { question: 'Who invented the lens that made lighthouse beams visible far away?' });
    expect(res.status).toBe(200);
    expect(res.body.answer).toMatch(/Fresnel/);
    expect(res.body.answer).toMatch(/\[\d\]/);
    expect(res.body.answerer).toBe('extractive');
    expect(res.body.sources.length).toBe(4);
    expect(res.body.sources[0].metadata.source).toBe('lighthouses.md');
    for (const s of res.body.sources) {
      expect(FIXTURE_SOURCES).toContain(s.metadata.source);
      expect(typeof s.id).toBe('string');
      expect(Number.isFinite(s.score)).toBe(true);
    }
    expect(res.body.generation).toMatchObject({ id: 'g1', model: expect.stringMatching(/^glove-sif-100d@/) });
    expect(res.body.generation.storeVersion).toMatch(/^v\d{8}T/);
  });

  it('retrieves top-k chunks sorted by score, honouring k and a metadata filter', async () => {
    const res = await postJson(`${svc.url}/v1/retrieve`, { question: 'how does yeast make bread dough rise', k: 2 });
    expect(res.status).toBe(200);
    expect(res.body.answer).toBeUndefined();
    expect(res.body.sources).toHaveLength(2);
    expect(res.body.sources[0].metadata.source).toBe('bread.txt');
    expect(res.body.sources[0].score).toBeGreaterThanOrEqual(res.body.sources[1].score);

    const filtered = await postJson(`${svc.url}/v1/retrieve`, { question: 'lava and ash', k: 5, filter: { source: 'bread.txt' } });
    expect(filtered.status).toBe(200);
    expect(filtered.body.sources.length).toBeGreaterThan(0);
    expect(filtered.body.sources.every((s: { metadata: { source: string } }) => s.metadata.source === 'bread.txt')).toBe(true);

    const twoKeys = await postJson(`${svc.url}/v1/retrieve`, { question: 'lava', k: 5, filter: { source: 'volcanoes.html', type: 'html' } });
    expect(twoKeys.status).toBe(200);
    expect(twoKeys.body.sources.every((s: { metadata: { source: string } }) => s.metadata.source === 'volcanoes.html')).toBe(true);
  });

  it('health and readiness show the active model and store version', async () => {
    expect((await fetch(`${svc.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${svc.url}/readyz`);
    expect(ready.status).toBe(200);
    const body = await ready.json();
    expect(body).toMatchObject({ status: 'ready', generation: 'g1', model: { name: 'glove-sif-100d', dimension: 100 } });
    expect(body.store.version).toMatch(/^v\d{8}T/);
  });
});

describe('OpenAI compatibility through the official openai client', () => {
  it('chat completions, non-streaming, carry the sources', async () => {
    const completion = await openai.chat.completions.create({
      model: 'rag',
      messages: [{ role: 'user', content: 'What makes a stratovolcano erupt explosively?' }],
    });
    const text = completion.choices[0]!.message.content!;
    expect(text).toMatch(/viscous/);
    expect(completion.object).toBe('chat.completion');
    const sources = (completion as unknown as { sources: Array<{ metadata: { source: string } }> }).sources;
    expect(sources[0]!.metadata.source).toBe('volcanoes.html');
  });

  it('chat completions stream over SSE with the same answer and sources in the first chunk', async () => {
    const question = 'What makes a stratovolcano erupt explosively?';
    const whole = await openai.chat.completions.create({ model: 'rag', messages: [{ role: 'user', content: question }] });
    const stream = await openai.chat.completions.create({ model: 'rag', stream: true, messages: [{ role: 'user', content: question }] });
    let text = '';
    let chunks = 0;
    let firstSources: unknown;
    let finish: string | null = null;
    for await (const chunk of stream) {
      if (chunks === 0) firstSources = (chunk as unknown as { sources?: unknown }).sources;
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe('stop');
    expect(Array.isArray(firstSources)).toBe(true);
    expect((firstSources as unknown[]).length).toBe(4);
  });

  it('embeddings with the active model (the SDK asks for base64) and lists models', async () => {
    const models = await openai.models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toEqual(['rag', 'glove-sif-100d']);
    const res = await openai.embeddings.create({ model: 'glove-sif-100d', input: ['a kitten on the rug', 'stock markets fell'] });
    expect(res.data).toHaveLength(2);
    const [a, b] = res.data.map((d) => d.embedding);
    expect(a).toHaveLength(100);
    const norm = Math.sqrt(a!.reduce((s, x) => s + x * x, 0));
    expect(norm).toBeCloseTo(1, 3);
    const float = await postJson(`${svc.url}/v1/embeddings`, { model: 'glove-sif-100d', input: 'a kitten on the rug', encoding_format: 'float' });
    expect(float.status).toBe(200);
    float.body.data[0].embedding.forEach((x: number, i: number) => expect(x).toBeCloseTo(a![i]!, 5));
    expect(b).not.toEqual(a);
  });
});

describe('bad input: a 4xx JSON error with its code, never a 500', () => {
  const cases: Array<[string, string, unknown, number, string, RegExp | string]> = [
    ['invalid JSON', '/v1/query', '{"question":', 400, 'RAG_HTTP_BAD_JSON', /not valid JSON/],
    ['empty object', '/v1/query', {}, 400, 'RAG_HTTP_VALIDATION', 'question: question is required'],
    ['wrong type', '/v1/query', { question: 5 }, 400, 'RAG_HTTP_VALIDATION', 'question: question must be a string'],
    ['blank question', '/v1/query', { question: '   ' }, 400, 'RAG_HTTP_VALIDATION', 'question: question must not be empty'],
    ['oversized k', '/v1/retrieve', { question: 'x', k: 1000 }, 400, 'RAG_HTTP_VALIDATION', 'k: k must be at most 50'],
    ['zero k', '/v1/retrieve', { question: 'x', k: 0 }, 400, 'RAG_HTTP_VALIDATION', 'k: k must be at least 1'],
    ['fractional k', '/v1/retrieve', { question: 'x', k: 1.5 }, 400, 'RAG_HTTP_VALIDATION', 'k: k must be an integer'],
    ['string k', '/v1/retrieve', { question: 'x', k: 'five' }, 400, 'RAG_HTTP_VALIDATION', 'k: k must be a number'],
    ['unknown field', '/v1/query', { question: 'x', top: 3 }, 400, 'RAG_HTTP_VALIDATION', 'unknown field(s): top'],
    ['bad filter operator', '/v1/query', { question: 'x', filter: { $where: 1 } }, 400, 'RAG_HTTP_VALIDATION', 'filter.$where: unknown operator $where'],
    ['nested filter object', '/v1/query', { question: 'x', filter: { source: { a: 1 } } }, 400, 'RAG_HTTP_VALIDATION', /filter.source: expected a string/],
    ['array body', '/v1/query', [], 400, 'RAG_HTTP_VALIDATION', /must be a JSON object/],
    ['long question', '/v1/query', { question: 'x'.repeat(5000) }, 400, 'RAG_HTTP_VALIDATION', 'question: question is longer than 4000 characters'],
    ['chat without messages', '/v1/chat/completions', { model: 'rag', messages: [] }, 400, 'RAG_HTTP_VALIDATION', 'messages: messages must not be empty'],
    ['chat without a user turn', '/v1/chat/completions', { messages: [{ role: 'system', content: 'hi' }] }, 400, 'RAG_HTTP_VALIDATION', 'messages: needs a user message with text'],
    ['chat bad role', '/v1/chat/completions', { messages: [{ role: 'wizard', content: 'hi' }] }, 400, 'RAG_HTTP_VALIDATION', /messages.0.role/],
    ['embeddings unknown model', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }, 404, 'RAG_HTTP_UNKNOWN_MODEL', /not served here; use "glove-sif-100d"/],
    ['embeddings empty input', '/v1/embeddings', { model: 'glove-sif-100d', input: [] }, 400, 'RAG_HTTP_VALIDATION', 'input: input must not be empty'],
    ['embeddings token arrays', '/v1/embeddings', { model: 'glove-sif-100d', input: [[1, 2]] }, 400, 'RAG_HTTP_VALIDATION', /input/],
  ];
  for (const [name, path, body, status, code, message] of cases) {
    it(name, async () => {
      const res = await postJson(`${svc.url}${path}`, body);
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      if (typeof message === 'string') expect(res.body.error.message).toBe(message);
      else expect(res.body.error.message).toMatch(message);
      expect(JSON.stringify(res.body)).not.toMatch(/at .*\.(ts|js):\d+/);
    });
  }

  it('a body that is not JSON (text/plain)', async () => {
    const res = await fetch(`${svc.url}/v1/query`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'what?' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('RAG_HTTP_VALIDATION');
  });

  it('a body over the size limit gets 413', async () => {
    const res = await postJson(`${svc.url}/v1/query`, { question: 'x', pad: 'y'.repeat(1_100_000) });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('RAG_HTTP_BODY_TOO_LARGE');
  });

  it('an unknown route gets a JSON 404', async () => {
    const res = await fetch(`${svc.url}/v1/nope`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'RAG_HTTP_NOT_FOUND', message: 'no route for GET /v1/nope', type: 'not_found_error' } });
  });
});
