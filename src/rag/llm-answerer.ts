import { ChatOpenAI } from '@langchain/openai';
import { StringOutputParser } from '@langchain/core/output_parsers';
import type { Config } from '../config.js';
import { RagError } from '../errors.js';
import { formatContext, ragPrompt } from './prompt.js';
import type { Source } from './retriever.js';

/** Answers written by an OpenAI-compatible upstream (vLLM, Ollama, llama.cpp) from a LangChain prompt. */
export class LlmAnswerer {
  private readonly chain;

  constructor(config: Pick<Config, 'llmBaseUrl' | 'llmModel' | 'llmApiKey' | 'llmTimeoutMs' | 'llmTemperature' | 'llmMaxTokens'>) {
    const model = new ChatOpenAI({
      model: config.llmModel,
      temperature: config.llmTemperature,
      maxTokens: config.llmMaxTokens,
      timeout: config.llmTimeoutMs,
      maxRetries: 1,
      apiKey: config.llmApiKey ?? 'not-needed',
      configuration: { baseURL: config.llmBaseUrl },
    });
    this.chain = ragPrompt.pipe(model).pipe(new StringOutputParser());
  }

  private static translate(err: unknown): RagError {
    if (err instanceof RagError) return err;
    const msg = err instanceof Error ? err.message : String(err);
    if (/timeout|timed out|aborted/i.test(msg)) return new RagError('RAG_LLM_UPSTREAM_TIMEOUT', `the LLM upstream timed out: ${msg}`, { cause: err });
    return new RagError('RAG_LLM_UPSTREAM_FAILED', `the LLM upstream failed: ${msg.slice(0, 300)}`, { cause: err });
  }

  async answer(question: string, sources: Source[], signal?: AbortSignal): Promise<string> {
    try {
      return await this.chain.invoke({ question, context: formatContext(sources) }, { ...(signal ? { signal } : {}) });
    } catch (err) {
      throw LlmAnswerer.translate(err);
    }
  }

  async *stream(question: string, sources: Source[], signal?: AbortSignal): AsyncGenerator<string> {
    try {
      const stream = await this.chain.stream({ question, context: formatContext(sources) }, { ...(signal ? { signal } : {}) });
      for await (const piece of stream) if (piece) yield piece;
    } catch (err) {
      throw LlmAnswerer.translate(err);
    }
  }
}
