import type { Config } from '../config.js';
import type { Generation } from '../reload/generation.js';
import type { MetadataFilter } from '../store/chroma-store.js';
import { extractiveAnswer } from './extractive-answerer.js';
import { fusionSettings, type FusionSettings, type RetrievalMode } from './hybrid.js';
import { LlmAnswerer } from './llm-answerer.js';
import { GenerationRetriever, documentsToSources, type Source } from './retriever.js';

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
}

/** Retrieval + answer over one generation. Holds no globals: the generation is passed in. */
export class RagService {
  private readonly llm: LlmAnswerer | null;
  private readonly fusion: FusionSettings;

  constructor(config: Config) {
    this.llm = config.llmBaseUrl ? new LlmAnswerer(config) : null;
    this.fusion = fusionSettings(config);
  }

  get answererName(): 'extractive' | 'llm' {
    return this.llm ? 'llm' : 'extractive';
  }

  async retrieve(generation: Generation, input: Omit<AskInput, 'question'> & { question: string }): Promise<Source[]> {
    const retriever = new GenerationRetriever(generation, { k: input.k, filter: input.filter, mode: input.mode ?? 'hybrid', contains: input.contains, fusion: this.fusion });
    return documentsToSources(await retriever.invoke(input.question));
  }

  async ask(generation: Generation, input: AskInput, signal?: AbortSignal): Promise<RagAnswer> {
    const sources = await this.retrieve(generation, input);
    const answer = this.llm
      ? await this.llm.answer(input.question, sources, signal)
      : await extractiveAnswer(generation, input.question, sources);
    return { answer, sources, answerer: this.answererName };
  }

  /** Sources first (before any token), then the answer in pieces. */
  async askStream(generation: Generation, input: AskInput, signal?: AbortSignal): Promise<{ sources: Source[]; pieces: AsyncGenerator<string> }> {
    const sources = await this.retrieve(generation, input);
    if (this.llm) return { sources, pieces: this.llm.stream(input.question, sources, signal) };
    const answer = await extractiveAnswer(generation, input.question, sources);
    async function* words(): AsyncGenerator<string> {
      // The extractive answer is ready at once; stream it in word groups like a model would.
      const parts = answer.match(/\S+\s*/g) ?? [answer];
      for (let i = 0; i < parts.length; i += 4) yield parts.slice(i, i + 4).join('');
    }
    return { sources, pieces: words() };
  }
}
