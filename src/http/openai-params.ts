import { RagError } from '../errors.js';

/**
 * What /v1/chat/completions does with each OpenAI parameter it does not answer by itself, as a
 * table (README "OpenAI compatibility" shows the same rows; test/integration/openai-compat.test.ts
 * tests them):
 * - `passthrough`: sent to the upstream exactly as the client wrote it (LLM_PROVIDER=openai);
 *   offline (no LLM_BASE_URL) a value that asks for something (`active`) is a 400 naming it.
 * - `sampling`: sent to the upstream; offline accepted without effect (the extractive answer is
 *   deterministic, which every sampling setting allows as an outcome).
 * Parameters the route honours itself (model, messages, stream, stream_options, max_tokens,
 * max_completion_tokens, stop, temperature, user) are not in this table.
 */
export const CHAT_PARAMETERS: Record<string, { kind: 'passthrough' | 'sampling'; active: (v: unknown) => boolean; streams?: false }> = {
  tools: { kind: 'passthrough', active: (v) => !(Array.isArray(v) && v.length === 0) },
  tool_choice: { kind: 'passthrough', active: (v) => v !== 'none' && v !== 'auto' },
  parallel_tool_calls: { kind: 'passthrough', active: () => false },
  functions: { kind: 'passthrough', active: (v) => !(Array.isArray(v) && v.length === 0) },
  function_call: { kind: 'passthrough', active: (v) => v !== 'none' && v !== 'auto' },
  response_format: { kind: 'passthrough', active: (v) => !(typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'text') },
  n: { kind: 'passthrough', active: (v) => v !== 1, streams: false },
  logprobs: { kind: 'passthrough', active: (v) => v !== false, streams: false },
  top_logprobs: { kind: 'passthrough', active: (v) => v !== 0, streams: false },
  logit_bias: { kind: 'passthrough', active: (v) => !(typeof v === 'object' && v !== null && Object.keys(v).length === 0) },
  audio: { kind: 'passthrough', active: () => true },
  modalities: { kind: 'passthrough', active: (v) => !(Array.isArray(v) && v.every((m) => m === 'text')) },
  prediction: { kind: 'passthrough', active: () => true },
  web_search_options: { kind: 'passthrough', active: () => true },
  reasoning_effort: { kind: 'passthrough', active: () => true },
  top_p: { kind: 'sampling', active: () => false },
  seed: { kind: 'sampling', active: () => false },
  presence_penalty: { kind: 'sampling', active: () => false },
  frequency_penalty: { kind: 'sampling', active: () => false },
};

/** Parameters for the upstream, exactly as the client sent them (null values dropped). */
export function upstreamParameters(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(CHAT_PARAMETERS)) if (body[name] !== undefined && body[name] !== null) out[name] = body[name];
  if (body.stop !== undefined && body.stop !== null) out.stop = body.stop;
  if (body.max_completion_tokens !== undefined && body.max_completion_tokens !== null) out.max_completion_tokens = body.max_completion_tokens;
  return out;
}

/**
 * Throws a 400 naming the first parameter this request asks for that cannot be honoured:
 * offline, any active passthrough parameter; with an upstream, the ones a stream cannot carry
 * through (n > 1, logprobs) and all passthrough parameters when the provider is Ollama's native API.
 */
export function checkChatParameters(body: Record<string, unknown>, mode: { upstream: 'openai' | 'ollama' | null; stream: boolean }): void {
  for (const [name, rule] of Object.entries(CHAT_PARAMETERS)) {
    const value = body[name];
    if (value === undefined || value === null || rule.kind !== 'passthrough' || !rule.active(value)) continue;
    if (mode.upstream === null) {
      throw new RagError(
        'RAG_HTTP_UNSUPPORTED_PARAMETER',
        `${name}: not supported when answering offline (extractive answers, no LLM_BASE_URL); configure an upstream that supports it or leave it out`,
        { details: { param: name } },
      );
    }
    if (mode.upstream === 'ollama') {
      throw new RagError('RAG_HTTP_UNSUPPORTED_PARAMETER', `${name}: not passed to Ollama's native API (LLM_PROVIDER=ollama); use LLM_PROVIDER=openai with Ollama's /v1 endpoint`, {
        details: { param: name },
      });
    }
    if (mode.stream && rule.streams === false) {
      throw new RagError('RAG_HTTP_UNSUPPORTED_PARAMETER', `${name}: not supported with stream: true here; send it without streaming`, { details: { param: name } });
    }
  }
}
