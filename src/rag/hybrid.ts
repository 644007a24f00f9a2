import type { Config } from '../config.js';
import type { Generation } from '../reload/generation.js';
import type { MetadataFilter, StoreHit } from '../store/chroma-store.js';

export const RETRIEVAL_MODES = ['dense', 'keyword', 'hybrid'] as const;
export type RetrievalMode = (typeof RETRIEVAL_MODES)[number];

export interface HybridOptions {
  k: number;
  mode: RetrievalMode;
  filter?: MetadataFilter | undefined;
  /** Exact term the chunk text must contain (Chroma whereDocument $contains; case-sensitive). */
  contains?: string | undefined;
  /** Candidates taken from each side before fusion. */
  candidates?: number;
  weights?: { dense: number; keyword: number };
  /** Reciprocal rank fusion constant. */
  rrfK?: number;
}

export type FusionSettings = Required<Pick<HybridOptions, 'candidates' | 'weights' | 'rrfK'>>;

/** Fusion settings from the configuration (defaults tuned with `npm run eval`). */
export function fusionSettings(config: Pick<Config, 'hybridDenseWeight' | 'hybridKeywordWeight' | 'hybridRrfK' | 'hybridCandidates'>): FusionSettings {
  return { candidates: config.hybridCandidates, rrfK: config.hybridRrfK, weights: { dense: config.hybridDenseWeight, keyword: config.hybridKeywordWeight } };
}

export interface Candidate {
  id: string;
  score: number;
}

/** A fused candidate: `score` is the RRF score, each side's own score kept where that side found it. */
export type FusedCandidate = Candidate & { denseScore?: number | undefined; keywordScore?: number | undefined };

const DEFAULT_WEIGHTS = { dense: 0.3, keyword: 1 };
const DEFAULT_RRF_K = 10;

/**
 * Weighted reciprocal rank fusion of two ranked lists (best first): an id at rank r (from 1) on a
 * side adds weight / (rrfK + r). The top k by fused score; ties keep first-seen order (dense
 * list first, then keyword-only ids), as Array.prototype.sort is stable.
 */
export function fuseRanks(dense: readonly Candidate[], keyword: readonly Candidate[], k: number, weights: { dense: number; keyword: number }, rrfK: number): FusedCandidate[] {
  // One object shape for every candidate (a side that missed it leaves its score undefined).
  const fused = new Map<string, FusedCandidate>();
  for (let i = 0; i < dense.length; i++) {
    const c = dense[i]!;
    fused.set(c.id, { id: c.id, score: weights.dense / (rrfK + i + 1), denseScore: c.score, keywordScore: undefined });
  }
  for (let i = 0; i < keyword.length; i++) {
    const c = keyword[i]!;
    const add = weights.keyword / (rrfK + i + 1);
    const cur = fused.get(c.id);
    if (cur) {
      cur.score += add;
      cur.keywordScore = c.score;
    } else fused.set(c.id, { id: c.id, score: add, denseScore: undefined, keywordScore: c.score });
  }
  return [...fused.values()].sort((a, b) => b.score - a.score).slice(0, k);
}

/** The exact-term filter as Chroma's whereDocument. */
const whereDocument = (options: HybridOptions) => (options.contains ? { $contains: options.contains } : undefined);

/** BM25 candidates that pass the filters (one filter implementation: store/where-filter.ts). */
function keywordCandidates(generation: Generation, query: string, n: number, options: HybridOptions): Promise<Candidate[]> {
  return generation.store.store.keywordSearch(query, n, options.filter, whereDocument(options));
}

async function denseCandidates(generation: Generation, embedded: Promise<number[]>, n: number, options: HybridOptions): Promise<Candidate[]> {
  const vector = await embedded;
  return generation.store.store.nearestIds(vector, n, options.filter, whereDocument(options));
}

/** Texts and metadata for the final ids only, in rank order (from the index when it is in process). */
async function materialise(generation: Generation, ranked: FusedCandidate[]): Promise<Array<StoreHit & { denseScore?: number; keywordScore?: number }>> {
  const records = await generation.store.store.getByIds(ranked.map((c) => c.id));
  const byId = new Map<string, (typeof records)[number]>();
  for (const r of records) byId.set(r.id, r);
  const out: Array<StoreHit & { denseScore?: number; keywordScore?: number }> = [];
  for (const c of ranked) {
    const r = byId.get(c.id);
    if (r) out.push({ id: c.id, score: c.score, denseScore: c.denseScore, keywordScore: c.keywordScore, text: r.text, metadata: r.metadata, distance: NaN });
  }
  return out;
}

/**
 * Dense and keyword (BM25) retrieval, run concurrently and fused by weighted reciprocal
 * rank fusion. `score` is the mode's own ranking score: cosine similarity (dense), BM25 (keyword),
 * or the fused RRF score (hybrid); `denseScore` / `keywordScore` say what each side saw.
 */
export async function retrieve(generation: Generation, query: string, options: HybridOptions): Promise<Array<StoreHit & { denseScore?: number; keywordScore?: number }>> {
  const { k, mode } = options;
  if (mode === 'dense') {
    const vector = await generation.embeddings.embedQuery(query);
    return generation.store.store.query(vector, k, options.filter, whereDocument(options));
  }
  if (mode === 'keyword') return materialise(generation, (await keywordCandidates(generation, query, k, options)).map((c) => ({ ...c, keywordScore: c.score })));
  const n = Math.max(options.candidates ?? 20, k * 4);
  const weights = options.weights ?? DEFAULT_WEIGHTS;
  const rrfK = options.rrfK ?? DEFAULT_RRF_K;
  const backend = generation.store.store;
  const embedded = generation.embeddings.embedQuery(query);
  if (backend.hybridNow) {
    // In process: one synchronous pass by row (the same results as below, fewer ids and awaits).
    const fused = backend.hybridNow(await embedded, query, { k, candidates: n, weights, rrfK }, options.filter, whereDocument(options));
    if (fused) return fused;
  }
  const [dense, keyword] = await Promise.all([denseCandidates(generation, embedded, n, options), keywordCandidates(generation, query, n, options)]);
  return materialise(generation, fuseRanks(dense, keyword, k, weights, rrfK));
}
