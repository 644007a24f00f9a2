import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);

const scalar = fc.oneof(fc.string({ maxLength: 30 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const filter = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(fc.oneof(fc.constantFrom('source', 'type', 'chunk', '$and', '$or', '$where', 'title'), fc.string({ maxLength: 8 })), fc.oneof(
    scalar,
    fc.record({ $in: fc.array(scalar, { maxLength: 4 }) }, { requiredKeys: [] }),
    fc.record({ $gt: scalar, $eq: scalar }, { requiredKeys: [] }),
    fc.array(fc.dictionary(fc.constantFrom('source', 'chunk'), scalar, { maxKeys: 2 }), { maxLength: 3 }),
  ), { maxKeys: 3 }),
);
const question = fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom('lighthouse lens', 'HQ-E1042', '', '   ', '\u0000\u202e', 'x'.repeat(4001)), scalar);
const queryBody = fc.record(
  {
    question,
    k: fc.oneof(fc.integer({ min: -5, max: 200 }), fc.double(), fc.string({ maxLength: 4 }), fc.constant(null)),
    filter,
    mode: fc.oneof(fc.constantFrom('dense', 'keyword', 'hybrid'), fc.string({ maxLength: 6 })),
    contains: fc.oneof(fc.string({ maxLength: 10 }), scalar),
    extra: fc.jsonValue({ maxDepth: 2 }),
  },
  { requiredKeys: [] },
);
const message = fc.record({ role: fc.oneof(fc.constantFrom('user', 'system', 'assistant', 'tool'), fc.string({ maxLength: 6 })), content: fc.oneof(question, fc.array(fc.record({ type: fc.constantFrom('text', 'image_url'), text: fc.string({ maxLength: 20 }) }), { maxLength: 3 }), fc.jsonValue({ maxDepth: 2 })) }, { requiredKeys: [] });
const chatBody = fc.record({ model: fc.oneof(fc.constant('rag'), scalar), messages: fc.oneof(fc.array(message, { maxLength: 4 }), fc.jsonValue({ maxDepth: 2 })), stream: fc.oneof(fc.boolean(), scalar), k: fc.oneof(fc.integer({ min: -2, max: 100 }), scalar), filter, temperature: scalar, max_tokens: scalar }, { requiredKeys: [] });
const embeddingsBody = fc.record({ model: fc.oneof(fc.constantFrom('glove-sif-100d', 'rag', 'text-embedding-3-small'), scalar), input: fc.oneof(question, fc.array(fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.array(fc.integer(), { maxLength: 3 })), { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })), encoding_format: fc.oneof(fc.constantFrom('float', 'base64'), scalar), dimensions: scalar }, { requiredKeys: [] });

const request = fc.oneof(
  fc.record({ path: fc.constantFrom('/v1/query', '/v1/retrieve'), body: fc.oneof(queryBody, fc.jsonValue({ maxDepth: 3 })) }),
  fc.record({ path: fc.constant('/v1/chat/completions'), body: fc.oneof(chatBody, fc.jsonValue({ maxDepth: 3 })) }),
  fc.record({ path: fc.constant('/v1/embeddings'), body: fc.oneof(embeddingsBody, fc.jsonValue({ maxDepth: 3 })) }),
  fc.record({ path: fc.constantFrom('/v1/query', '/v1/chat/completions', '/v1/embeddings', '/admin/rollback', '/v1/nope'), raw: fc.string({ maxLength: 60 }) }),
);

describe(`fuzzed JSON bodies across all routes (${RUNS} runs, fast-check)`, () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('never answers 5xx, always with a JSON error body for 4xx', async () => {
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const body = 'raw' in req ? req.raw : JSON.stringify(req.body);
        const res = await fetch(`${svc.url}${req.path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500) throw new Error(`${res.status} for ${req.path} ${body.slice(0, 300)} -> ${text.slice(0, 300)}`);
        if (res.status >= 400) {
          const parsed = JSON.parse(text) as { error: { code: string; message: string } };
          expect(parsed.error.code).toMatch(/^RAG_/);
          expect(parsed.error.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.FUZZ_SEED ?? 20261123) },
    );
    // The service still serves normally afterwards.
    const ok = await fetch(`${svc.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"question":"lighthouse"}' });
    expect(ok.status).toBe(200);
    expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(RUNS);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(RUNS / 4);
  }, 300_000);
});
