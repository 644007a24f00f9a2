import type { Generation } from '../reload/generation.js';
import { analyze } from '../store/keyword-index.js';
import type { Source } from './sources.js';
import { cosine } from '../embeddings/similarity.js';

/**
 * One line-ish unit of a chunk. Headings (Markdown `#`, HTML headings that html-to-text wrote in
 * capitals, a chunk's heading path) and questions (FAQ entries, "Why ...?" lines) are context, never
 * answers: they say what the sentences after them are about.
 */
export interface Unit {
  text: string;
  kind: 'heading' | 'question' | 'sentence';
  /** The heading or question this sentence follows (nearest above it in the chunk, else the chunk's heading path). */
  context?: string;
  /** 0 for the first sentence after its heading or question, 1 for the next, ... */
  position: number;
}

const MIN_SENTENCE_CHARS = 12;
const MAX_SENTENCE_CHARS = 400;

function isCapsHeading(line: string): boolean {
  // html-to-text writes <h1>-<h6> in capitals: "WORKERS SEE THE SAME JOB TWICE".
  const letters = line.replace(/[^A-Za-z]/g, '');
  return letters.length >= 4 && letters === letters.toUpperCase() && !/[.!:;,]$/.test(line) && line.split(/\s+/).length <= 14;
}

function clean(text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .replace(/^[#>*\-+\s]+|^\d+\.\s+/, '')
    .replace(/\*\*|__/g, '')
    .trim();
}

/**
 * Split a chunk into headings, questions and sentences (Markdown-ish: headings, list items and
 * table rows stand alone; code fences are skipped).
 */
export function splitUnits(text: string, headingPath?: string): Unit[] {
  const units: Unit[] = [];
  let context = headingPath ? headingPath.split(' > ').at(-1) : undefined;
  // A chunk that starts mid-section: its first sentences are not the first after the heading.
  let position = headingPath ? 3 : 0;
  let inFence = false;
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (/^\s{0,3}(```|~~~)/.test(line)) {
      inFence = !inFence;
      lines.push('');
      continue;
    }
    lines.push(inFence ? '' : line);
  }
  const blocks = lines.join('\n').split(/\n{2,}|\n(?=\s{0,3}(?:[#>*+-]\s|\d+\.\s|\|))/);
  for (const raw of blocks) {
    const block = raw.trim();
    if (!block) continue;
    const heading = /^#{1,6}\s/.test(block) || (!block.includes('\n') && isCapsHeading(block));
    if (heading && !block.includes('\n')) {
      const t = clean(block.replace(/#+\s*$/, ''));
      if (t) {
        units.push({ text: t, kind: 'heading', position: 0 });
        context = t;
        position = 0;
      }
      continue;
    }
    // A heading line glued to its first paragraph (single newline): split it off.
    let body = block;
    const firstLine = block.split('\n')[0]!;
    if (block.includes('\n') && (/^#{1,6}\s/.test(firstLine) || isCapsHeading(firstLine))) {
      const t = clean(firstLine.replace(/#+\s*$/, ''));
      if (t) {
        units.push({ text: t, kind: 'heading', position: 0 });
        context = t;
        position = 0;
      }
      body = block.slice(firstLine.length + 1);
    }
    // A line ending in "?" on its own line (FAQ style) is a question heading for what follows.
    const bodyLines = body.split('\n');
    let buffer: string[] = [];
    const flushBuffer = () => {
      const para = clean(buffer.join(' '));
      buffer = [];
      if (!para || /^\|?[-\s|:]+\|?$/.test(para)) return;
      for (const s of para.split(/(?<=[.!?])\s+(?=[A-Z0-9`"'(])/)) {
        const t = s.trim();
        if (!t || !/[a-z]/i.test(t)) continue;
        if (/\?$/.test(t)) {
          units.push({ text: t, kind: 'question', position: 0 });
          context = t;
          position = 0;
          continue;
        }
        if (t.length < MIN_SENTENCE_CHARS || t.split(/\s+/).length < 3) continue;
        units.push({ text: t.length > MAX_SENTENCE_CHARS ? `${t.slice(0, MAX_SENTENCE_CHARS - 3)}...` : t, kind: 'sentence', ...(context ? { context } : {}), position: position++ });
      }
    };
    for (const line of bodyLines) {
      if (/\?\s*$/.test(line.trim()) && buffer.length === 0) {
        const q = clean(line);
        if (q) {
          units.push({ text: q, kind: 'question', position: 0 });
          context = q;
          position = 0;
        }
        continue;
      }
      buffer.push(line);
    }
    flushBuffer();
  }
  return units;
}

/** Split a chunk into the sentences an answer may quote (no headings, no questions). */
export function splitSentences(text: string): string[] {
  return splitUnits(text).filter((u) => u.kind === 'sentence').map((u) => u.text);
}

export interface ExtractiveOptions {
  maxSentences?: number;
  maxCandidates?: number;
}

const termSet = (text: string) => new Set(analyze(text));

function overlap(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 || b.size === 0) return 0;
  let n = 0;
  for (const t of a) if (b.has(t)) n++;
  return n / Math.sqrt(a.size * b.size);
}

function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 && b.size === 0) return 1;
  let n = 0;
  for (const t of a) if (b.has(t)) n++;
  return n / (a.size + b.size - n);
}


/**
 * Offline answer: sentences of the retrieved chunks, each followed by a citation marker [n]
 * naming its source. A sentence scores by its own match with the question (embedding cosine and
 * stemmed term overlap) and by how well the heading or question it follows matches the question,
 * with a bonus for coming first after that heading. Headings, questions and restatements of the
 * question are never quoted; near-duplicates (chunk overlap, repeated docs) are dropped; each
 * further sentence from an already-quoted source pays a penalty, so the answer spreads across
 * sources when they have something to say.
 */
export async function extractiveAnswer(generation: Pick<Generation, 'model'>, question: string, sources: Source[], options: ExtractiveOptions = {}): Promise<string> {
  if (sources.length === 0) return 'No relevant passages were found in the store for this question.';
  const maxSentences = options.maxSentences ?? 3;
  const qTerms = termSet(question);
  const candidates: Array<Unit & { source: number; order: number; terms: Set<string> }> = [];
  sources.forEach((s, i) => {
    const path = typeof s.metadata.headings === 'string' ? s.metadata.headings : undefined;
    for (const u of splitUnits(s.text, path)) {
      if (u.kind !== 'sentence') continue;
      const terms = termSet(u.text);
      // A restated question ("How do I pause a queue" inside a sentence) answers nothing.
      if (qTerms.size > 0 && jaccard(terms, qTerms) >= 0.75) continue;
      candidates.push({ ...u, source: i + 1, order: candidates.length, terms });
    }
  });
  const limited = candidates.slice(0, options.maxCandidates ?? 96);
  if (limited.length === 0) return `See the cited passage [1].`;
  const contexts = [...new Set(limited.flatMap((c) => (c.context ? [c.context] : [])))];
  const [qVec] = await generation.model.embedBatch([question], 'query');
  const docVectors = await generation.model.embedBatch([...contexts, ...limited.map((c) => c.text)], 'document');
  const contextScore = new Map(contexts.map((c, i) => [c, 0.5 * cosine(docVectors[i]!, qVec!) + 0.5 * overlap(termSet(c), qTerms)]));
  const sentenceVectors = docVectors.slice(contexts.length);
  const scored = limited.map((c, i) => {
    const own = 0.6 * cosine(sentenceVectors[i]!, qVec!) + 0.4 * overlap(c.terms, qTerms);
    const ctx = c.context ? contextScore.get(c.context)! : 0;
    const first = c.context ? Math.max(0, 0.1 - 0.04 * c.position) : 0;
    // Earlier sources ranked higher in retrieval: a small prior.
    const prior = (0.03 * (sources.length - c.source)) / sources.length;
    return { ...c, score: 0.55 * own + 0.45 * ctx * (c.context ? 1 : 0) + first + prior };
  });
  scored.sort((a, b) => b.score - a.score);

  const picked: typeof scored = [];
  const perSource = new Map<number, number>();
  const pool = [...scored];
  while (picked.length < maxSentences && pool.length > 0) {
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i < pool.length; i++) {
      const c = pool[i]!;
      const lower = c.text.toLowerCase();
      const dup = picked.some((p) => {
        const pl = p.text.toLowerCase();
        return pl.includes(lower) || lower.includes(pl) || jaccard(p.terms, c.terms) >= 0.6;
      });
      if (dup) {
        pool.splice(i--, 1);
        continue;
      }
      const s = c.score - 0.12 * (perSource.get(c.source) ?? 0);
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    }
    if (best < 0) break;
    const [c] = pool.splice(best, 1);
    // Stop when what is left is far weaker than the best sentence: padding would not help.
    if (picked.length > 0 && bestScore < 0.5 * picked[0]!.score) break;
    picked.push(c!);
    perSource.set(c!.source, (perSource.get(c!.source) ?? 0) + 1);
  }
  picked.sort((a, b) => a.source - b.source || a.order - b.order);
  return picked.map((p) => `${/[.!?]$/.test(p.text) ? p.text : `${p.text}.`} [${p.source}]`).join(' ');
}
