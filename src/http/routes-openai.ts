import { randomUUID } from 'node:crypto';
import type { Router } from 'express';
import { createRouter } from './router.js';
import { RagError } from '../errors.js';
import { leaseFor, type AppDeps } from './context.js';
import { generationRef } from './routes-rag.js';
import { chatSchema, embeddingsSchema, normaliseFilter, parseBody } from './schemas.js';

export const RAG_MODEL_ID = 'rag';

function lastUserText(messages: Array<{ role: string; content?: string | Array<{ text: string }> | null | undefined }>): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role !== 'user') continue;
    const text = typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join('\n');
    if (text.trim()) return text.trim();
  }
  throw new RagError('RAG_HTTP_VALIDATION', 'messages: needs a user message with text');
}

/** OpenAI-compatible routes, so the official `openai` client works unchanged against the service. */
export function openAiRoutes(deps: AppDeps): Router {
  const r = createRouter();
  const chat = chatSchema(deps.config);

  r.get('/models', (_req, res) => {
    const gen = deps.manager.current;
    const created = Math.floor(Date.parse(gen?.createdAt ?? new Date().toISOString()) / 1000);
    const data = [{ id: RAG_MODEL_ID, object: 'model', created, owned_by: 'rag-service' }];
    if (gen) data.push({ id: gen.model.name, object: 'model', created, owned_by: 'local-embeddings' });
    res.json({ object: 'list', data });
  });

  r.post('/chat/completions', async (req, res) => {
    const body = parseBody(chat, req.body);
    const question = lastUserText(body.messages);
    if (question.length > deps.config.maxQuestionChars) {
      throw new RagError('RAG_HTTP_VALIDATION', `messages: the question is longer than ${deps.config.maxQuestionChars} characters`);
    }
    const gen = leaseFor(deps, req, res);
    const input = { question, k: body.k ?? deps.config.defaultK, filter: normaliseFilter(body.filter), mode: body.mode, contains: body.contains };
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? RAG_MODEL_ID;
    const signal = res.locals.signal as AbortSignal;

    if (!body.stream) {
      const result = await deps.rag.ask(gen, input, signal);
      res.json({
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: result.answer }, finish_reason: 'stop', logprobs: null }],
        usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
        sources: result.sources,
        generation: generationRef(gen),
      });
      return;
    }

    // Retrieval happens before the first byte, so its errors still get a proper status code.
    const { sources, pieces } = await deps.rag.askStream(gen, input, signal);
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...extra,
    });
    send(chunk({ role: 'assistant', content: '' }, null, { sources, generation: generationRef(gen) }));
    try {
      for await (const piece of pieces) {
        if (res.destroyed) return;
        send(chunk({ content: piece }, null));
      }
      send(chunk({}, 'stop', { sources }));
    } catch (err) {
      const e = err instanceof RagError ? err : new RagError('RAG_LLM_UPSTREAM_FAILED', String(err), { cause: err });
      deps.logger.warn({ code: e.code, err: e.message }, 'stream failed after headers');
      send({ error: { code: e.code, message: e.message, type: 'server_error' } });
    }
    res.write('data: [DONE]\n\n');
    res.end();
  });

  r.post('/embeddings', async (req, res) => {
    const body = parseBody(embeddingsSchema, req.body);
    const gen = leaseFor(deps, req, res);
    if (body.model !== gen.model.name && body.model !== gen.model.id && body.model !== RAG_MODEL_ID) {
      throw new RagError('RAG_HTTP_UNKNOWN_MODEL', `model "${body.model}" is not served here; use "${gen.model.name}" (see GET /v1/models)`);
    }
    if (body.dimensions !== undefined && body.dimensions !== gen.model.dimension) {
      throw new RagError('RAG_HTTP_VALIDATION', `dimensions: model ${gen.model.name} produces ${gen.model.dimension}-d vectors`);
    }
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    const vectors = await gen.embeddings.embedDocuments(inputs);
    res.json({
      object: 'list',
      model: gen.model.name,
      data: vectors.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
      })),
      usage: { prompt_tokens: 0, total_tokens: 0 },
    });
  });
  return r;
}
