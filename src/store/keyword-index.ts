import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import MiniSearch from 'minisearch';
import { RagError } from '../errors.js';
import { topKSearch } from './keyword-topk.js';

export const KEYWORD_INDEX_FILE = 'keyword-index.json';
const FORMAT = 2;
/** Query terms in more than this share of chunks are dropped (their IDF is near zero, their postings long). */
const MAX_DF_RATIO = 0.15;

/**
 * Tokens for keyword search: words, plus whole identifiers such as HQ-E1042, HQ_RETENTION_HOURS,
 * --visibility-timeout or transport.targets kept as one token beside their parts, so an exact
 * identifier ranks the passage that has it first.
 */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const m of text.toLowerCase().matchAll(/[a-z0-9]+(?:[-_.][a-z0-9]+)*/g)) {
    const whole = m[0];
    out.push(whole);
    if (/[-_.]/.test(whole)) out.push(...whole.split(/[-_.]+/).filter(Boolean));
  }
  return out;
}

/** English function words: they match everything and rank nothing. */
const STOP_WORDS = new Set(
  ('a an and are as at be but by can could did do does for from had has have how i if in into is it its me my no not of on or our ' +
    'so than that the their them then there these they this to too was we were what when where which who why will with would you your').split(' '),
);
const processTerm = (t: string): string | null => (STOP_WORDS.has(t) ? null : t);

/** Tokens as the index sees them (stop words removed). */
function queryTerms(text: string): string[] {
  return tokenize(text).filter((t) => processTerm(t) !== null);
}

const OPTIONS = {
  fields: ['text', 'title'],
  idField: 'id',
  tokenize,
  processTerm,
  searchOptions: { tokenize, processTerm, boost: { title: 1.5 }, prefix: false, fuzzy: false, combineWith: 'OR' as const },
};

export interface KeywordHit {
  id: string;
  score: number;
}

/** BM25 keyword index over a store version's chunks (MiniSearch), with the same ids as Chroma. */
export class KeywordIndex {
  private constructor(
    private readonly mini: MiniSearch<{ id: string; text: string; title?: string }>,
    /** Document frequency of every term: common terms are pruned from queries. */
    private readonly df: Map<string, number>,
    readonly origin: 'store' | 'built',
  ) {}

  static build(docs: Iterable<{ id: string; text: string; title?: string | undefined }>, origin: 'store' | 'built' = 'built'): KeywordIndex {
    const mini = new MiniSearch<{ id: string; text: string; title?: string }>(OPTIONS);
    const df = new Map<string, number>();
    for (const d of docs) {
      mini.add({ id: d.id, text: d.text, ...(d.title ? { title: d.title } : {}) });
      for (const t of new Set(queryTerms(`${d.title ?? ''} ${d.text}`))) df.set(t, (df.get(t) ?? 0) + 1);
    }
    return new KeywordIndex(mini, df, origin);
  }

  /**
   * The query's terms minus those found in more than MAX_DF_RATIO of the chunks (kept when
   * nothing else is left: then the two rarest). BM25 gives such terms almost no weight, but
   * scoring their long posting lists cost ~10 ms a query on 10k chunks, on the event loop.
   */
  private prune(terms: string[]): string[] {
    const n = Math.max(1, this.mini.documentCount);
    const unique = [...new Set(terms)];
    const kept = unique.filter((t) => (this.df.get(t) ?? 0) / n <= MAX_DF_RATIO);
    if (kept.length > 0) return kept;
    return unique.sort((a, b) => (this.df.get(a) ?? 0) - (this.df.get(b) ?? 0)).slice(0, 2);
  }

  get size(): number {
    return this.mini.documentCount;
  }

  search(query: string, limit: number): KeywordHit[] {
    const terms = this.prune(queryTerms(query));
    if (terms.length === 0) return [];
    // Same scores as MiniSearch's search(), without scoring objects for every match (keyword-topk.ts).
    const fast = topKSearch(this.mini, terms, limit, OPTIONS.searchOptions);
    if (fast) return fast;
    return this.mini
      .search(terms.join(' '), { tokenize: (q) => q.split(' ') })
      .slice(0, limit)
      .map((r) => ({ id: String(r.id), score: r.score }));
  }

  serialize(): string {
    return JSON.stringify({ format: FORMAT, df: Object.fromEntries(this.df), index: this.mini.toJSON() });
  }

  /** Load the index a store version ships; null when it has none; a corrupt one is an error. */
  static async load(dir: string): Promise<KeywordIndex | null> {
    let text: string;
    try {
      text = await readFile(join(dir, KEYWORD_INDEX_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new RagError('RAG_STORE_KEYWORD_INDEX_CORRUPT', `${KEYWORD_INDEX_FILE} cannot be read`, { cause: err });
    }
    try {
      const parsed = JSON.parse(text) as { format?: number; index?: unknown; df?: Record<string, number> };
      if (parsed.format !== FORMAT || !parsed.index || !parsed.df) throw new Error(`unknown format ${String(parsed.format)}`);
      const mini = MiniSearch.loadJSON<{ id: string; text: string; title?: string }>(JSON.stringify(parsed.index), OPTIONS);
      return new KeywordIndex(mini, new Map(Object.entries(parsed.df)), 'store');
    } catch (cause) {
      throw new RagError('RAG_STORE_KEYWORD_INDEX_CORRUPT', `${KEYWORD_INDEX_FILE} is corrupt: ${(cause as Error).message.slice(0, 200)}`, { cause });
    }
  }
}
