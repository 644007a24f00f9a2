import type { BaseChatModel } from '@langchain/core/language_models/chat_models';
import type { Config } from '../config.js';

export type ChatModelConfig = Pick<Config, 'llmProvider' | 'llmBaseUrl' | 'llmModel' | 'llmApiKey' | 'llmTimeoutMs' | 'llmTemperature' | 'llmMaxTokens'>;

/** One HTTP call to the LLM upstream, as audited: the exact body sent, what came back, how long. */
export interface UpstreamCall {
  requestId: string | null;
  provider: string;
  method: string;
  url: string;
  /** The request body as sent (parsed JSON when it is JSON). */
  body: unknown;
  /** HTTP status, or null when no response came (refused, timed out, aborted). */
  status: number | null;
  /** The error (network) or the upstream's error body (status >= 400), cut to 1000 characters. */
  error: string | null;
  /** Until the response headers (a stream goes on after). */
  latencyMs: number;
}

export interface ChatModelRequest {
  requestId?: string | undefined;
  /** Per-request overrides of the configured temperature / max tokens. */
  temperature?: number | undefined;
  maxTokens?: number | undefined;
  /** OpenAI parameters forwarded verbatim (openai provider only), e.g. tools, response_format, n. */
  passthrough?: Record<string, unknown> | undefined;
  onCall?: ((call: UpstreamCall) => void) | undefined;
}

/**
 * A fetch that tags the upstream request with our request id (X-Request-Id, so the upstream's
 * logs can be matched) and reports every call (body as sent, status or error, latency).
 */
export function auditedFetch(provider: string, requestId: string | null, onCall: ((call: UpstreamCall) => void) | undefined): typeof fetch {
  return async (input, init) => {
    const started = performance.now();
    const headers = new Headers(init?.headers);
    if (requestId) headers.set('x-request-id', requestId);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = init?.method ?? (typeof input === 'object' && 'method' in input ? input.method : 'GET');
    let body: unknown = null;
    if (typeof init?.body === 'string') {
      try {
        body = JSON.parse(init.body);
      } catch {
        body = init.body;
      }
    }
    const report = (status: number | null, error: string | null) =>
      onCall?.({ requestId, provider, method, url, body, status, error, latencyMs: Math.round((performance.now() - started) * 100) / 100 });
    let res: Response;
    try {
      res = await fetch(input, { ...init, headers });
    } catch (err) {
      report(null, (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 1000));
      throw err;
    }
    if (res.ok) report(res.status, null);
    else {
      const text = await res
        .clone()
        .text()
        .catch(() => '');
      report(res.status, text.slice(0, 1000) || res.statusText);
    }
    return res;
  };
}

type InitChatModel = typeof import('langchain/chat_models/universal').initChatModel;
let initChatModelPromise: Promise<InitChatModel> | undefined;

/**
 * The upstream chat model for one request, built by LangChain's `initChatModel` from
 * LLM_PROVIDER / LLM_MODEL / LLM_BASE_URL. `langchain` (and the provider package) load on first
 * use, so an offline service does not pay for them at start-up.
 */
export async function createChatModel(config: ChatModelConfig, request: ChatModelRequest = {}): Promise<BaseChatModel> {
  initChatModelPromise ??= import('langchain/chat_models/universal').then((m) => m.initChatModel);
  const initChatModel = await initChatModelPromise;
  const fetchFn = auditedFetch(config.llmProvider, request.requestId ?? null, request.onCall);
  const temperature = request.temperature ?? config.llmTemperature;
  const maxTokens = request.maxTokens ?? config.llmMaxTokens;
  if (config.llmProvider === 'ollama') {
    const model = await initChatModel(config.llmModel, {
      modelProvider: 'ollama',
      baseUrl: config.llmBaseUrl,
      temperature,
      numPredict: maxTokens,
      fetch: fetchFn,
    });
    return model as unknown as BaseChatModel;
  }
  const model = await initChatModel(config.llmModel, {
    modelProvider: 'openai',
    temperature,
    maxTokens,
    timeout: config.llmTimeoutMs,
    maxRetries: 1,
    apiKey: config.llmApiKey ?? 'not-needed',
    configuration: { baseURL: config.llmBaseUrl, fetch: fetchFn },
    ...(request.passthrough && Object.keys(request.passthrough).length ? { modelKwargs: request.passthrough } : {}),
  });
  return model as unknown as BaseChatModel;
}
