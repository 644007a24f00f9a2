import { randomUUID } from 'node:crypto';
import type { Router } from 'express';
import { createRouter } from './router.js';
import { RagError } from '../errors.js';
import { leaseFor, type AppDeps } from './context.js';
import { generationRef } from './routes-rag.js';
import { hubModelId } from '../embeddings/model-folders.js';
import { tokenCounterFor } from '../embeddings/token-counter.js';
import { checkChatParameters, upstreamParameters } from './openai-params.js';
import { chatSchema, embeddingsSchema, normaliseFilter, parseBody } from './schemas.js';
import { openEventStream } from './sse.js';
import { sendJson } from './json-response.js';

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

function messageText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('\n');
  return '';
}

/** One message for an unknown model on every OpenAI route (chat and embeddings alike). */
function unknownModelMessage(model: string, served: string[]): string {
  return `model "${model}" is not served here; use ${served.map((m) => `"${m}"`).join(' or ')} (see GET /v1/models)`;
}

/** OpenAI-compatible routes, so the official `openai` client works unchanged against the service. */
export function openAiRoutes(deps: AppDeps): Router {
  const r = createRouter();
  const chat = chatSchema(deps.config);

  /** Chat model names: `rag` (and the upstream's LLM_MODEL when one is configured). */
  const chatModels = (): string[] => (deps.config.llmBaseUrl ? [RAG_MODEL_ID, deps.config.llmModel] : [RAG_MODEL_ID]);
  const upstream = deps.config.llmBaseUrl ? deps.config.llmProvider : null;

  r.get('/models', (_req, res) => {
    const gen = deps.manager.current;
    const created = Math.floor(Date.parse(gen?.createdAt ?? new Date().toISOString()) / 1000);
    const data = [{ id: RAG_MODEL_ID, object: 'model', created, owned_by: 'rag-service' }];
    if (upstream && deps.config.llmModel !== RAG_MODEL_ID) data.push({ id: deps.config.llmModel, object: 'model', created, owned_by: `upstream-${upstream}` });
    if (gen) data.push({ id: hubModelId(gen.model.dir) ?? gen.model.name, object: 'model', created, owned_by: 'local-embeddings' });
    res.json({ object: 'list', data });
  });

  r.post('/chat/completions', async (req, res) => {
    const body = parseBody(chat, req.body);
    const model = body.model ?? RAG_MODEL_ID;
    if (!chatModels().includes(model)) {
      throw new RagError('RAG_HTTP_UNKNOWN_MODEL', unknownModelMessage(model, chatModels()), { details: { param: 'model' } });
    }
    checkChatParameters(body, { upstream, stream: body.stream });
    const question = lastUserText(body.messages);
    if (question.length > deps.config.maxQuestionChars) {
      throw new RagError('RAG_HTTP_VALIDATION', `messages: the question is longer than ${deps.config.maxQuestionChars} characters`);
    }
    const gen = leaseFor(deps, req, res);
    const input = { question, k: body.k ?? deps.config.defaultK, filter: normaliseFilter(body.filter), mode: body.mode, contains: body.contains };
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const signal = res.locals.signal as AbortSignal;
    const requestId = res.locals.requestId as string | undefined;
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
    const stops = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    const upstreamOptions = {
      requestId,
      temperature: body.temperature ?? undefined,
      maxTokens: body.max_tokens ?? undefined,
      passthrough: upstreamParameters(body),
    };
    const counter = await tokenCounterFor(gen.model);
    const promptText = (body.messages as Array<{ content?: unknown }>).map((m) => messageText(m.content)).join('\n');
    const usageFrom = (promptTokens: number, completionTokens: number) => ({ prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens });

    /** Offline: the extractive answer cut at a stop sequence and at max_tokens (tokens of the served tokenizer). */
    const offlineAnswer = (text: string): { text: string; finish: string; tokens: number } => {
      let out = text;
      for (const s of stops) {
        const at = out.indexOf(s);
        if (at !== -1) out = out.slice(0, at);
      }
      const cut = maxTokens !== undefined ? counter.truncate(out, maxTokens) : { text: out, tokens: counter.count(out), truncated: false };
      return { text: cut.text, finish: cut.truncated ? 'length' : 'stop', tokens: cut.tokens };
    };

    if (!body.stream) {
      const result = await deps.rag.ask(gen, input, signal, upstreamOptions);
      let choices: Array<Record<string, unknown>>;
      let usage;
      if (result.answerer === 'llm') {
        choices = (result.choices ?? []).map((c, index) => ({
          index,
          message: { role: 'assistant', content: c.content === '' && c.toolCalls ? null : c.content, ...(c.toolCalls ? { tool_calls: c.toolCalls } : {}), refusal: null },
          finish_reason: c.finishReason,
          logprobs: c.logprobs ?? null,
        }));
        // The upstream's own count when it sent one; else ours over the exact prompt sent and the answers.
        usage = result.usage ?? usageFrom(counter.count((result.prompt ?? []).join('\n')), (result.choices ?? []).reduce((n, c) => n + counter.count(c.content), 0));
      } else {
        const a = offlineAnswer(result.answer);
        choices = [{ index: 0, message: { role: 'assistant', content: a.text, refusal: null }, finish_reason: a.finish, logprobs: null }];
        usage = usageFrom(counter.count(promptText), a.tokens);
      }
      sendJson(res, { id, object: 'chat.completion', created, model, choices, usage, sources: result.sources, generation: generationRef(gen) });
      return;
    }

    const includeUsage = body.stream_options?.include_usage === true;
    // Retrieval (and, offline, the whole answer) happens before the first byte, so its errors
    // still get a proper status code.
    let sources;
    let pieces: AsyncGenerator<{ content?: string; toolCalls?: unknown[] }>;
    let final: () => { usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null; finishReason: string };
    let completionText = '';
    let upstreamPrompt: string[] | undefined;
    if (upstream) {
      const s = await deps.rag.askStream(gen, input, signal, upstreamOptions);
      sources = s.sources;
      pieces = s.pieces;
      upstreamPrompt = s.prompt;
      final = () => {
        const f = s.final!();
        return { usage: f.usage ?? usageFrom(counter.count((upstreamPrompt ?? []).join('\n')), counter.count(completionText)), finishReason: f.finishReason };
      };
    } else {
      const result = await deps.rag.ask(gen, input, signal);
      sources = result.sources;
      const a = offlineAnswer(result.answer);
      pieces = (async function* words() {
        // The extractive answer is ready at once; stream it in word groups like a model would.
        const parts = a.text.match(/\S+\s*/g) ?? [];
        for (let i = 0; i < parts.length; i += 4) yield { content: parts.slice(i, i + 4).join('') };
      })();
      final = () => ({ usage: usageFrom(counter.count(promptText), a.tokens), finishReason: a.finish });
    }
    const stream = openEventStream(req, res);
    const send = (payload: unknown) => stream.send(null, payload);
    // With include_usage every chunk carries `usage: null` and one last chunk (no choices) the totals.
    const usageNull = includeUsage ? { usage: null } : {};
    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...usageNull,
      ...extra,
    });
    send(chunk({ role: 'assistant', content: '' }, null, { sources, generation: generationRef(gen) }));
    try {
      for await (const piece of pieces) {
        if (stream.closed) return;
        if (piece.content) completionText += piece.content;
        send(chunk({ ...(piece.content ? { content: piece.content } : {}), ...(piece.toolCalls ? { tool_calls: piece.toolCalls } : {}) }, null));
      }
      const f = final();
      send(chunk({}, f.finishReason, { sources }));
      if (includeUsage) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: f.usage });
    } catch (err) {
      const e = err instanceof RagError ? err : new RagError('RAG_LLM_UPSTREAM_FAILED', String(err), { cause: err });
      deps.logger.warn({ code: e.code, err: e.message }, 'stream failed after headers');
      send({ error: { code: e.code, message: e.message, type: 'server_error' } });
    }
    stream.sendRaw('[DONE]');
    stream.end();
  });

  r.post('/embeddings', async (req, res) => {
    const body = parseBody(embeddingsSchema, req.body);
    const gen = leaseFor(deps, req, res);
    // A hub cache model answers to its hub id (org/name) as well as to its folder name.
    const served = hubModelId(gen.model.dir) ?? gen.model.name;
    if (body.model !== served && body.model !== gen.model.name && body.model !== gen.model.id && body.model !== RAG_MODEL_ID) {
      throw new RagError('RAG_HTTP_UNKNOWN_MODEL', unknownModelMessage(body.model, [served, RAG_MODEL_ID]), { details: { param: 'model' } });
    }
    if (body.dimensions !== undefined && body.dimensions !== gen.model.dimension) {
      throw new RagError('RAG_HTTP_VALIDATION', `dimensions: model ${gen.model.name} produces ${gen.model.dimension}-d vectors`);
    }
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    const vectors = await gen.embeddings.embedDocuments(inputs);
    const counter = await tokenCounterFor(gen.model);
    const promptTokens = inputs.reduce((n, t) => n + counter.count(t), 0);
    sendJson(res, {
      object: 'list',
      model: served,
      data: vectors.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(v).buffer).toString('base64') : v,
      })),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  });
  return r;
}
