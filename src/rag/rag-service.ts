import type { Config } from '../config.js';
import type { Generation } from '../reload/generation.js';
import type { MetadataFilter } from '../store/chroma-store.js';
import { extractiveAnswer } from './extractive-answerer.js';
import { fusionSettings, type FusionSettings, type RetrievalMode } from './hybrid.js';
import type { UpstreamCall } from './chat-model.js';
import { LlmAnswerer, type AnswerChoice, type AnswerOptions, type LlmStream, type Usage } from './llm-answerer.js';
import { retrieveSources, type Source } from './sources.js';

export interface AskInput {
  question: string;
  k: number;
  filter?: MetadataFilter | undefined;
  mode?: RetrievalMode | undefined;
  contains?: string | undefined;
}

export interface RagAnswer {
  answer: string;
  sources: Source[];
  answerer: 'extractive' | 'llm';
  /** Upstream answers only: every choice (n > 1, tool calls, logprobs) and the upstream's usage. */
  choices?: AnswerChoice[];
  usage?: Usage | null;
  /** Upstream answers only: the prompt sent, for counting tokens when the upstream reports none. */
  prompt?: string[];
}

export interface RagStream {
  sources: Source[];
  pieces: AsyncGenerator<{ content?: string; toolCalls?: unknown[] }>;
  /** Upstream only, known once `pieces` is exhausted. */
  final?: LlmStream['final'];
  prompt?: string[];
}

export interface RagServiceOptions {
  /** Told about every HTTP call to the LLM upstream (the audit log). */
  onUpstreamCall?: (call: UpstreamCall) => void;
}

/** Retrieval + answer over one generation. Holds no globals: the generation is passed in. */
export class RagService {
  private readonly llm: LlmAnswerer | null;
  private readonly fusion: FusionSettings;

  constructor(config: Config, options: RagServiceOptions = {}) {
    this.llm = config.llmBaseUrl ? new LlmAnswerer(config, options.onUpstreamCall) : null;
    this.fusion = fusionSettings(config);
  }

  get answererName(): 'extractive' | 'llm' {
    return this.llm ? 'llm' : 'extractive';
  }

  retrieve(generation: Generation, input: Omit<AskInput, 'question'> & { question: string }): Promise<Source[]> {
    return retrieveSources(generation, input.question, { k: input.k, filter: input.filter, mode: input.mode ?? 'hybrid', contains: input.contains, fusion: this.fusion });
  }

  async ask(generation: Generation, input: AskInput, signal?: AbortSignal, options: Omit<AnswerOptions, 'signal'> = {}): Promise<RagAnswer> {
    const sources = await this.retrieve(generation, input);
    if (this.llm) {
      const reply = await this.llm.answer(input.question, sources, { ...options, signal });
      return { answer: reply.choices[0]?.content ?? '', sources, answerer: 'llm', choices: reply.choices, usage: reply.usage, prompt: reply.prompt.map((m) => m.text) };
    }
    return { answer: await extractiveAnswer(generation, input.question, sources), sources, answerer: 'extractive' };
  }

  /** Sources first (before any token), then the answer in pieces. */
  async askStream(generation: Generation, input: AskInput, signal?: AbortSignal, options: Omit<AnswerOptions, 'signal'> = {}): Promise<RagStream> {
    const sources = await this.retrieve(generation, input);
    if (this.llm) {
      const s = await this.llm.stream(input.question, sources, { ...options, signal });
      return { sources, pieces: s.pieces, final: s.final, prompt: s.prompt.map((m) => m.text) };
    }
    const answer = await extractiveAnswer(generation, input.question, sources);
    async function* words(): AsyncGenerator<{ content: string }> {
      // The extractive answer is ready at once; stream it in word groups like a model would.
      const parts = answer.match(/\S+\s*/g) ?? [answer];
      for (let i = 0; i < parts.length; i += 4) yield { content: parts.slice(i, i + 4).join('') };
    }
    return { sources, pieces: words() };
  }
}
