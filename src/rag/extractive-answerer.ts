import type { Generation } from '../reload/generation.js';
import type { Source } from './retriever.js';

const STOP = new Set(
  'a an and are as at be by can do does for from has have how i in is it its of on or that the this to was what when where which who why will with you your'.split(' '),
);

function tokens(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9][a-z0-9_.-]*[a-z0-9]|[a-z0-9]/g) ?? []).filter((t) => !STOP.has(t));
}

/** Split a chunk into sentences (Markdown-ish: headings, list items and code lines stand alone). */
export function splitSentences(text: string): string[] {
  const out: string[] = [];
  for (const block of text.split(/\n{2,}|\n(?=[#>*-]|\d+\.|\|)/)) {
    const clean = block.replace(/\s+/g, ' ').replace(/^[#>*\-\s]+/, '').trim();
    if (!clean) continue;
    for (const s of clean.split(/(?<=[.!?])\s+(?=[A-Z0-9`"(])/)) {
      const t = s.trim();
      if (t.length >= 20 && /[a-z]/i.test(t) && !/^\|?[-\s|:]+\|?$/.test(t)) out.push(t.length > 400 ? `${t.slice(0, 397)}...` : t);
    }
  }
  return out;
}

export interface ExtractiveOptions {
  maxSentences?: number;
  maxCandidates?: number;
}

/**
 * Offline answer: the sentences of the retrieved chunks that best match the question (cosine
 * of sentence and question embeddings from the generation's model, plus keyword overlap),
 * each followed by a citation marker [n] naming its source.
 */
export async function extractiveAnswer(generation: Generation, question: string, sources: Source[], options: ExtractiveOptions = {}): Promise<string> {
  if (sources.length === 0) return 'No relevant passages were found in the store for this question.';
  const maxSentences = options.maxSentences ?? 3;
  const candidates: Array<{ text: string; source: number; order: number }> = [];
  sources.forEach((s, i) => {
    for (const text of splitSentences(s.text)) candidates.push({ text, source: i + 1, order: candidates.length });
  });
  const limited = candidates.slice(0, options.maxCandidates ?? 96);
  if (limited.length === 0) return `See the cited passage [1].`;
  const qTokens = new Set(tokens(question));
  const [qVec, ...sVecs] = await generation.model.embedBatch([question, ...limited.map((c) => c.text)]);
  const scored = limited.map((c, i) => {
    const v = sVecs[i]!;
    let cos = 0;
    for (let d = 0; d < v.length; d++) cos += v[d]! * qVec![d]!;
    const ts = tokens(c.text);
    const overlap = ts.length && qTokens.size ? ts.filter((t) => qTokens.has(t)).length / Math.sqrt(ts.length * qTokens.size) : 0;
    // Earlier sources ranked higher in retrieval: a small prior.
    return { ...c, score: 0.6 * cos + 0.4 * overlap + 0.02 * (sources.length - c.source) / sources.length };
  });
  scored.sort((a, b) => b.score - a.score);
  const seen = new Set<string>();
  const picked = scored.filter((s) => {
    const key = s.text.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  }).slice(0, maxSentences);
  picked.sort((a, b) => a.source - b.source || a.order - b.order);
  return picked.map((p) => `${/[.!?]$/.test(p.text) ? p.text : `${p.text}.`} [${p.source}]`).join(' ');
}
