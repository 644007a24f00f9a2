import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import MiniSearch from 'minisearch';
import { stemmer } from 'stemmer';
import { RagError } from '../errors.js';
import { topKSearch } from './keyword-topk.js';

export const KEYWORD_INDEX_FILE = 'keyword-index.json';
/** Format 3: stemmed terms, a headings field. Older shipped indexes are rebuilt from the store's texts. */
const FORMAT = 3;

/**
 * Everything that decides how text becomes index terms, in one place (the index build may run in
 * a worker thread: it imports this module and needs nothing else). Changing any of it changes
 * what a shipped index means: bump FORMAT.
 *  - stem: Porter stemming (npm `stemmer`) of plain words; identifiers are indexed whole.
 *  - fieldBoosts: weight of a query term found in the chunk text, its document title, its heading
 *    path, or its neighbouring chunks' text (0: the field is not indexed).
 *  - maxDfRatio: query terms in more than this share of chunks are dropped (IDF near zero, long postings).
 * Each choice is kept because `npm run eval` measured it on the tuning sets (see docs/retrieval.md).
 */
export interface KeywordAnalysis {
  readonly stem: boolean;
  readonly fieldBoosts: Readonly<Record<(typeof KEYWORD_FIELDS)[number], number>>;
  readonly maxDfRatio: number;
}
export const KEYWORD_ANALYSIS: KeywordAnalysis = Object.freeze({
  stem: true,
  // headings 0: a boosted heading-path field was not proven by the held-out set (docs/retrieval.md);
  // heading words still count in the chunk text. neighbours 0: the text of the chunks before and
  // after helped 400-character chunks (0.3 was chosen then) but not the 1000-character default
  // chunking: on the tuning sets hybrid recall@5 is 0.83/0.813 with 0 and 0.83/0.771 with 0.15 or 0.3
  // (`npm run eval -- --neighbours N`). The field stays available to the analysis.
  fieldBoosts: Object.freeze({ text: 1, title: 1.5, headings: 0, neighbours: 0 }),
  maxDfRatio: 0.15,
});
export const KEYWORD_FIELDS = ['text', 'title', 'headings', 'neighbours'] as const;
export interface KeywordDoc {
  id: string;
  text: string;
  title?: string | undefined;
  /** Heading path of the chunk ("Guide > Section > Subsection"), from the Markdown splitter. */
  headings?: string | undefined;
  /** Text of the chunks before and after it in the same document. */
  neighbours?: string | undefined;
}

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
export const STOP_WORDS: ReadonlySet<string> = new Set(
  ('a an and are as at be but by can could did do does for from had has have how i if in into is it its me my no not of on or our ' +
    'so than that the their them then there these they this to too was we were what when where which who why will with would you your').split(' '),
);

/** One token to its index term: null for stop words; plain words stemmed, identifiers and numbers kept whole. */
export function analyzeTerm(t: string, analysis: Pick<KeywordAnalysis, 'stem'> = KEYWORD_ANALYSIS): string | null {
  if (STOP_WORDS.has(t)) return null;
  return analysis.stem && /^[a-z]{3,}$/.test(t) ? stemmer(t) : t;
}

/** Index terms of a text (stop words removed, stemmed), the same for chunks and queries. */
export function analyze(text: string, analysis: Pick<KeywordAnalysis, 'stem'> = KEYWORD_ANALYSIS): string[] {
  const out: string[] = [];
  for (const t of tokenize(text)) {
    const term = analyzeTerm(t, analysis);
    if (term !== null) out.push(term);
  }
  return out;
}

function miniOptions(analysis: KeywordAnalysis) {
  const processTerm = (t: string) => analyzeTerm(t, analysis);
  return {
    fields: [...KEYWORD_FIELDS],
    idField: 'id',
    tokenize,
    processTerm,
    searchOptions: { tokenize, processTerm, boost: { ...analysis.fieldBoosts }, prefix: false, fuzzy: false, combineWith: 'OR' as const },
  };
}

export interface KeywordHit {
  id: string;
  score: number;
}

/** BM25 keyword index over a store version's chunks (MiniSearch), with the same ids as Chroma. */
export class KeywordIndex {
  private constructor(
    private readonly mini: MiniSearch<KeywordDoc>,
    /** Document frequency of every term: common terms are pruned from queries. */
    private readonly df: Map<string, number>,
    readonly origin: 'store' | 'built',
    readonly analysis: KeywordAnalysis = KEYWORD_ANALYSIS,
  ) {}

  static build(docs: Iterable<KeywordDoc>, origin: 'store' | 'built' = 'built', analysis: KeywordAnalysis = KEYWORD_ANALYSIS): KeywordIndex {
    const mini = new MiniSearch<KeywordDoc>(miniOptions(analysis));
    const df = new Map<string, number>();
    for (const d of docs) {
      const headings = analysis.fieldBoosts.headings > 0 ? d.headings : undefined;
      const neighbours = analysis.fieldBoosts.neighbours > 0 ? d.neighbours : undefined;
      mini.add({ id: d.id, text: d.text, ...(d.title ? { title: d.title } : {}), ...(headings ? { headings } : {}), ...(neighbours ? { neighbours } : {}) });
      for (const t of new Set(analyze(`${d.title ?? ''} ${headings ?? ''} ${d.text}`, analysis))) df.set(t, (df.get(t) ?? 0) + 1);
    }
    return new KeywordIndex(mini, df, origin, analysis);
  }

  /**
   * The query's terms minus those found in more than maxDfRatio of the chunks (kept when
   * nothing else is left: then the two rarest). BM25 gives such terms almost no weight, but
   * scoring their long posting lists cost ~10 ms a query on 10k chunks, on the event loop.
   */
  private prune(terms: string[]): string[] {
    const n = Math.max(1, this.mini.documentCount);
    const unique = [...new Set(terms)];
    const kept = unique.filter((t) => (this.df.get(t) ?? 0) / n <= this.analysis.maxDfRatio);
    if (kept.length > 0) return kept;
    return unique.sort((a, b) => (this.df.get(a) ?? 0) - (this.df.get(b) ?? 0)).slice(0, 2);
  }

  get size(): number {
    return this.mini.documentCount;
  }

  /**
   * BM25 search. `extra`: additional query words with their weight (< 1), e.g. the embedding
   * model's nearest words to the query's words (query expansion).
   */
  search(query: string, limit: number, extra: ReadonlyArray<{ word: string; weight: number }> = []): KeywordHit[] {
    const own = this.prune(analyze(query, this.analysis));
    const weights = new Map<string, number>(own.map((t) => [t, 1]));
    for (const e of extra) {
      const t = analyzeTerm(e.word.toLowerCase(), this.analysis);
      if (t && !weights.has(t) && this.df.has(t) && (this.df.get(t)! / Math.max(1, this.mini.documentCount)) <= this.analysis.maxDfRatio) weights.set(t, e.weight);
    }
    const terms = [...weights.keys()];
    if (terms.length === 0) return [];
    // Terms are already analysed: MiniSearch must not stem them a second time. Same scores as
    // MiniSearch's search(), without scoring objects for every match (keyword-topk.ts); query
    // expansion (per-term weights) takes MiniSearch's own path.
    if (extra.length === 0) {
      const fast = topKSearch(this.mini, terms, limit, { boost: { ...this.analysis.fieldBoosts }, prefix: false, fuzzy: false, combineWith: 'OR', processTerm: (t) => t });
      if (fast) return fast;
    }
    return this.mini
      .search(terms.join(' '), { tokenize: (q) => q.split(' '), processTerm: (t) => t, boostTerm: (t) => weights.get(t) ?? 1 })
      .slice(0, limit)
      .map((r) => ({ id: String(r.id), score: r.score }));
  }

  serialize(): string {
    return JSON.stringify({ format: FORMAT, analysis: this.analysis, df: Object.fromEntries(this.df), index: this.mini.toJSON() });
  }

  /**
   * Load the index a store version ships; null when it has none or when it was written in an
   * older format (the caller then indexes the store's texts afresh); a corrupt one is an error.
   */
  static async load(dir: string): Promise<KeywordIndex | null> {
    const text = await KeywordIndex.readShipped(dir);
    if (text === null) return null;
    try {
      return KeywordIndex.parse(text, 'store');
    } catch (cause) {
      throw new RagError('RAG_STORE_KEYWORD_INDEX_CORRUPT', `${KEYWORD_INDEX_FILE} is corrupt: ${(cause as Error).message.slice(0, 200)}`, { cause });
    }
  }

  /** The text of the keyword index a store version ships, or null when it has none (unreadable: RAG_STORE_KEYWORD_INDEX_CORRUPT). */
  static async readShipped(dir: string): Promise<string | null> {
    try {
      return await readFile(join(dir, KEYWORD_INDEX_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new RagError('RAG_STORE_KEYWORD_INDEX_CORRUPT', `${KEYWORD_INDEX_FILE} cannot be read`, { cause: err });
    }
  }

  /**
   * An index from serialize()'s text (a shipped keyword-index.json, or the serving index cache);
   * null for the older format 2; throws on anything else it cannot load.
   */
  static parse(text: string, origin: 'store' | 'built'): KeywordIndex | null {
    const parsed = JSON.parse(text) as { format?: number; index?: unknown; df?: Record<string, number>; analysis?: unknown };
    if (parsed.format === 2) return null;
    if (parsed.format !== FORMAT || !parsed.index || !parsed.df) throw new Error(`unknown format ${String(parsed.format)}`);
    const analysis = parseAnalysis(parsed.analysis);
    // loadJS takes the parsed object: no second JSON.stringify + JSON.parse of the whole index.
    const mini = MiniSearch.loadJS<KeywordDoc>(parsed.index as Parameters<typeof MiniSearch.loadJS>[0], miniOptions(analysis));
    return new KeywordIndex(mini, new Map(Object.entries(parsed.df)), origin, analysis);
  }
}

/** The analysis a shipped index was built with (checked: the file is untrusted). */
function parseAnalysis(raw: unknown): KeywordAnalysis {
  const a = raw as { stem?: unknown; fieldBoosts?: Record<string, unknown>; maxDfRatio?: unknown } | undefined;
  const boosts = a?.fieldBoosts;
  const num = (v: unknown, lo: number, hi: number) => typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;
  if (!a || typeof a.stem !== 'boolean' || !num(a.maxDfRatio, 0, 1) || !boosts || !KEYWORD_FIELDS.every((f) => num(boosts[f], 0, 100))) {
    throw new Error('its analysis settings are missing or invalid');
  }
  return Object.freeze({
    stem: a.stem,
    maxDfRatio: a.maxDfRatio as number,
    fieldBoosts: Object.freeze({ text: boosts.text as number, title: boosts.title as number, headings: boosts.headings as number, neighbours: boosts.neighbours as number }),
  });
}
