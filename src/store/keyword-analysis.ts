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
 *
 * The tokens of the lower-cased text that match /[a-z0-9]+(?:[-_.][a-z0-9]+)*\/g, each followed by
 * its parts when it has a separator. Scanned by character code, not by that regex: building a
 * keyword index from a store's texts (a Python-made store) tokenizes every chunk, and the regex's
 * match objects were a third of that build's time (test/unit/lexical.test.ts checks both agree).
 */
export function tokenize(text: string): string[] {
  const s = text.toLowerCase();
  const out: string[] = [];
  const n = s.length;
  let i = 0;
  while (i < n) {
    if (!isWordChar(s.charCodeAt(i))) {
      i++;
      continue;
    }
    const start = i;
    i++;
    while (i < n && isWordChar(s.charCodeAt(i))) i++;
    let compound = false;
    // A separator joins the next run only when a letter or digit follows it.
    while (i + 1 < n && isJoiner(s.charCodeAt(i)) && isWordChar(s.charCodeAt(i + 1))) {
      compound = true;
      i += 2;
      while (i < n && isWordChar(s.charCodeAt(i))) i++;
    }
    out.push(s.slice(start, i));
    if (!compound) continue;
    // Its parts: the runs between single separators.
    for (let j = start; j < i; j++) {
      const part = j;
      while (j < i && isWordChar(s.charCodeAt(j))) j++;
      out.push(s.slice(part, j));
    }
  }
  return out;
}

/** a-z or 0-9. */
function isWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
}

/** - _ . */
function isJoiner(c: number): boolean {
  return c === 45 || c === 95 || c === 46;
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

