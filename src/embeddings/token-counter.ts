import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RagError } from '../errors.js';
import { importTransformers } from './transformers-module.js';

/** Counts tokens with a served model's own tokenizer (its tokenizer.json), for OpenAI `usage`. */
export interface TokenCounter {
  count(text: string): number;
  /** The longest prefix of `text` (cut at a word boundary) that has at most `max` tokens. */
  truncate(text: string, max: number): { text: string; tokens: number; truncated: boolean };
}

interface Tokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
}

const cache = new Map<string, Promise<TokenCounter>>();

async function load(dir: string): Promise<TokenCounter> {
  let tokenizerJson: unknown;
  let tokenizerConfig: Record<string, unknown>;
  try {
    tokenizerJson = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'));
    tokenizerConfig = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new RagError('RAG_MODEL_FILE_MISSING', `cannot read the tokenizer of ${dir} to count tokens`, { cause });
  }
  const { AutoTokenizer, PreTrainedTokenizer } = await importTransformers();
  const name = String(tokenizerConfig.tokenizer_class ?? 'PreTrainedTokenizer').replace(/Fast$/, '');
  const mapping = (AutoTokenizer as unknown as { TOKENIZER_CLASS_MAPPING: Record<string, typeof PreTrainedTokenizer> }).TOKENIZER_CLASS_MAPPING;
  const Cls = mapping[name] ?? PreTrainedTokenizer;
  const tokenizer = new Cls(tokenizerJson as object, tokenizerConfig) as unknown as Tokenizer;
  const count = (text: string) => (text ? tokenizer.encode(text, { add_special_tokens: false }).length : 0);
  return {
    count,
    truncate(text, max) {
      const total = count(text);
      if (total <= max) return { text, tokens: total, truncated: false };
      const words = text.match(/\S+\s*/g) ?? [];
      let out = '';
      let tokens = 0;
      for (const w of words) {
        const n = count(w);
        if (tokens + n > max) break;
        out += w;
        tokens += n;
      }
      return { text: out.trimEnd(), tokens, truncated: true };
    },
  };
}

/** The counter for a model folder, loaded once per model identity. */
export function tokenCounterFor(model: { id: string; dir: string }): Promise<TokenCounter> {
  let c = cache.get(model.id);
  if (!c) {
    c = load(model.dir);
    c.catch(() => cache.delete(model.id));
    cache.set(model.id, c);
  }
  return c;
}
