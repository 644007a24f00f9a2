import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import MiniSearch from 'minisearch';
import { RagError } from '../errors.js';
import { analyze, analyzeTerm, KEYWORD_ANALYSIS, KEYWORD_FIELDS, tokenize, type KeywordAnalysis, type KeywordDoc } from './keyword-analysis.js';
import { parseKeywordJson } from './keyword-json.js';
import { compilePostings, compilePostingsInSlices, KEYWORD_TEXT_FORMAT, KeywordPostings, type KeywordPostingsData } from './keyword-postings.js';

export const KEYWORD_INDEX_FILE = 'keyword-index.json';
/** Format 3: stemmed terms, a headings field. Older shipped indexes are rebuilt from the store's texts. */
const FORMAT = KEYWORD_TEXT_FORMAT;

export { analyze, analyzeTerm, KEYWORD_ANALYSIS, KEYWORD_FIELDS, STOP_WORDS, tokenize, type KeywordAnalysis, type KeywordDoc } from './keyword-analysis.js';

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

  get size(): number {
    return this.mini.documentCount;
  }

  /** The typed layout of this index (keyword-postings.ts): what a generation serves from. */
  compile(): KeywordPostingsData {
    return compilePostings(this.mini.toJSON(), Object.fromEntries(this.df), this.analysis, this.origin);
  }

  private compiled: KeywordPostings | null = null;

  /**
   * BM25 search. `extra`: additional query words with their weight (< 1), e.g. the embedding
   * model's nearest words to the query's words (query expansion, an eval experiment). Without
   * extra words it is the served path (keyword-postings.ts); with them, MiniSearch's own search.
   */
  search(query: string, limit: number, extra: ReadonlyArray<{ word: string; weight: number }> = []): KeywordHit[] {
    if (extra.length === 0) return (this.compiled ??= new KeywordPostings(this.compile())).search(query, limit);
    const n = Math.max(1, this.mini.documentCount);
    const ratio = (t: string) => (this.df.get(t) ?? 0) / n;
    const unique = [...new Set(analyze(query, this.analysis))];
    const kept = unique.filter((t) => ratio(t) <= this.analysis.maxDfRatio);
    const own = kept.length > 0 ? kept : unique.sort((a, b) => ratio(a) - ratio(b)).slice(0, 2);
    const weights = new Map<string, number>(own.map((t) => [t, 1]));
    for (const e of extra) {
      const t = analyzeTerm(e.word.toLowerCase(), this.analysis);
      if (t && !weights.has(t) && this.df.has(t) && ratio(t) <= this.analysis.maxDfRatio) weights.set(t, e.weight);
    }
    const terms = [...weights.keys()];
    if (terms.length === 0) return [];
    // Terms are already analysed: MiniSearch must not stem them a second time.
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
   * serialize()'s text (a shipped keyword-index.json, or the serving index cache) compiled straight
   * to the typed layout, without building MiniSearch's object graph; null for the older format 2;
   * throws on anything else it cannot load (the text is untrusted).
   */
  static compileText(text: string, origin: 'store' | 'built'): KeywordPostingsData | null {
    const p = KeywordIndex.prepareText(text);
    return p && compilePostings(p.index, p.df, p.analysis, origin);
  }

  /**
   * compileText's checks at once (a text that is not JSON, or not format 3 or 2, throws here; null
   * for format 2), and its compile in slices that let the thread's other work run between them
   * (compilePostingsInSlices): `compile()` rejects on what compilePostings would throw.
   */
  static compileTextInSlices(text: string, origin: 'store' | 'built', sliceMs?: number): { compile: () => Promise<KeywordPostingsData> } | null {
    const p = KeywordIndex.prepareText(text);
    return p && { compile: () => compilePostingsInSlices(p.index, p.df, p.analysis, origin, sliceMs) };
  }

  /** serialize()'s text parsed (its postings lazily, keyword-json.ts) and its format checked; null for format 2. */
  private static prepareText(text: string): { index: unknown; df: unknown; analysis: KeywordAnalysis } | null {
    // Its postings parsed one term at a time (keyword-json.ts), not as one object graph.
    const lazy = parseKeywordJson(text) as { format?: number; index?: unknown; df?: unknown; analysis?: unknown } | null;
    // Any other format is decided on the text parsed whole, as before (an older format-2 file is checked whole too).
    const parsed = lazy?.format === FORMAT ? lazy : (JSON.parse(text) as typeof lazy & object);
    if (parsed.format === 2) return null;
    if (parsed.format !== FORMAT || !parsed.index || !parsed.df) throw new Error(`unknown format ${String(parsed.format)}`);
    return { index: parsed.index, df: parsed.df, analysis: parseAnalysis(parsed.analysis) };
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
export function parseAnalysis(raw: unknown): KeywordAnalysis {
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
