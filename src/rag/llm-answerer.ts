import type { BaseMessage } from '@langchain/core/messages';
import type { ChatGeneration } from '@langchain/core/outputs';
import { RagError } from '../errors.js';
import { createChatModel, type ChatModelConfig, type ChatModelRequest } from './chat-model.js';
import type { Source } from './sources.js';

/** OpenAI `usage`. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface AnswerChoice {
  content: string;
  /** OpenAI `tool_calls`, as the upstream sent them. */
  toolCalls?: unknown[] | undefined;
  finishReason: string;
  logprobs: unknown;
}

export interface LlmReply {
  choices: AnswerChoice[];
  /** The upstream's own count, or null when it sent none. */
  usage: Usage | null;
  /** The prompt messages sent (for counting tokens when the upstream reports none). */
  prompt: BaseMessage[];
}

/** A streamed reply: content pieces (or raw tool-call deltas), then the final facts. */
export interface LlmStream {
  pieces: AsyncGenerator<{ content?: string; toolCalls?: unknown[] }>;
  /** Known once `pieces` is exhausted. */
  final(): { usage: Usage | null; finishReason: string };
  prompt: BaseMessage[];
}

export type AnswerOptions = Omit<ChatModelRequest, 'onCall'> & { signal?: AbortSignal | undefined };

function usageOf(meta: { input_tokens?: number; output_tokens?: number; total_tokens?: number } | undefined): Usage | null {
  if (!meta || typeof meta.input_tokens !== 'number' || typeof meta.output_tokens !== 'number') return null;
  return { prompt_tokens: meta.input_tokens, completion_tokens: meta.output_tokens, total_tokens: meta.total_tokens ?? meta.input_tokens + meta.output_tokens };
}

/**
 * Answers written by the LLM upstream from the RAG prompt. The chat model comes from LangChain's
 * initChatModel (see chat-model.ts); every HTTP call it makes is reported to `onCall` (the audit log).
 */
export class LlmAnswerer {
  constructor(
    private readonly config: ChatModelConfig,
    private readonly onCall?: ChatModelRequest['onCall'],
  ) {}

  private static translate(err: unknown): RagError {
    if (err instanceof RagError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    if (/timeout|timed out|aborted/i.test(msg)) return new RagError('RAG_LLM_UPSTREAM_TIMEOUT', `the LLM upstream timed out: ${msg}`, { cause: err });
    return new RagError('RAG_LLM_UPSTREAM_FAILED', `the LLM upstream failed: ${msg.slice(0, 300)}`, { cause: err });
  }

  private async prepare(question: string, sources: Source[], options: AnswerOptions) {
    // LangChain's prompt module loads with the first upstream call, not at start-up (npm start to ready).
    const { formatContext, ragPrompt } = await import('./prompt.js');
    const prompt = await ragPrompt.formatMessages({ question, context: formatContext(sources) });
    const passthrough = options.passthrough ?? {};
    const model = await createChatModel(this.config, {
      requestId: options.requestId,
      temperature: options.temperature,
      // max_completion_tokens replaces max_tokens (OpenAI rejects both at once).
      maxTokens: passthrough.max_completion_tokens !== undefined ? -1 : options.maxTokens,
      passthrough,
      onCall: this.onCall,
    });
    const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(this.config.llmTimeoutMs)]) : AbortSignal.timeout(this.config.llmTimeoutMs);
    return { prompt, model, signal };
  }

  async answer(question: string, sources: Source[], options: AnswerOptions = {}): Promise<LlmReply> {
    try {
      const { prompt, model, signal } = await this.prepare(question, sources, options);
      const result = await model.generate([prompt], { signal });
      const generations = (result.generations[0] ?? []) as ChatGeneration[];
      const choices = generations.map((g) => {
        const toolCalls = g.message.additional_kwargs?.tool_calls;
        return {
          content: g.message.text,
          ...(Array.isArray(toolCalls) && toolCalls.length ? { toolCalls } : {}),
          finishReason: String(g.generationInfo?.finish_reason ?? (g.message.response_metadata as Record<string, unknown> | undefined)?.finish_reason ?? 'stop'),
          logprobs: g.generationInfo?.logprobs ?? null,
        };
      });
      const tu = result.llmOutput?.tokenUsage as { promptTokens?: number; completionTokens?: number; totalTokens?: number } | undefined;
      const usage =
        tu && typeof tu.promptTokens === 'number' && typeof tu.completionTokens === 'number'
          ? { prompt_tokens: tu.promptTokens, completion_tokens: tu.completionTokens, total_tokens: tu.totalTokens ?? tu.promptTokens + tu.completionTokens }
          : usageOf((generations[0]?.message as { usage_metadata?: Parameters<typeof usageOf>[0] } | undefined)?.usage_metadata);
      return { choices, usage, prompt };
    } catch (err) {
      throw LlmAnswerer.translate(err);
    }
  }

  async stream(question: string, sources: Source[], options: AnswerOptions = {}): Promise<LlmStream> {
    const { prompt, model, signal } = await this.prepare(question, sources, options).catch((err: unknown) => {
      throw LlmAnswerer.translate(err);
    });
    let usage: Usage | null = null;
    let finishReason = 'stop';
    async function* pieces(): AsyncGenerator<{ content?: string; toolCalls?: unknown[] }> {
      try {
        const stream = await model.stream(prompt, { signal });
        for await (const chunk of stream) {
          usage = usageOf(chunk.usage_metadata) ?? usage;
          const reason = chunk.response_metadata?.finish_reason;
          if (typeof reason === 'string') finishReason = reason;
          // LangChain's standard tool-call chunks, back in OpenAI's delta form.
          const toolCalls = (chunk.tool_call_chunks ?? []).map((t) => ({
            index: t.index ?? 0,
            ...(t.id ? { id: t.id, type: 'function' } : {}),
            function: { ...(t.name ? { name: t.name } : {}), arguments: t.args ?? '' },
          }));
          const text = chunk.text;
          if (toolCalls.length) yield { toolCalls, ...(text ? { content: text } : {}) };
          else if (text) yield { content: text };
        }
      } catch (err) {
        throw LlmAnswerer.translate(err);
      }
    }
    return { pieces: pieces(), final: () => ({ usage, finishReason }), prompt };
  }
}
