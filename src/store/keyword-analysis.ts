import { stemmer } from 'stemmer';

/**
 * Everything that decides how text becomes index terms, in one place (the index build may run in
 * a worker thread: it imports this module and needs nothing else). Changing any of it changes
 * what a shipped index means: bump FORMAT in keyword-index.ts.
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

