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

type Meta = StoreHit['metadata'];

/** Evaluate a (validated) Chroma-style `where` filter against one record's metadata. */
export function matchesFilter(meta: Meta, filter: MetadataFilter | undefined): boolean {
  if (!filter) return true;
  return Object.entries(filter).every(([key, cond]) => {
    if (key === '$and') return (cond as MetadataFilter[]).every((f) => matchesFilter(meta, f));
    if (key === '$or') return (cond as MetadataFilter[]).some((f) => matchesFilter(meta, f));
    const v = meta[key];
    if (cond === null || typeof cond !== 'object') return v === cond;
    const [op, arg] = Object.entries(cond as Record<string, unknown>)[0]!;
    switch (op) {
      case '$eq': return v === arg;
      case '$ne': return v !== arg;
      case '$gt': return typeof v === 'number' && v > (arg as number);
      case '$gte': return typeof v === 'number' && v >= (arg as number);
      case '$lt': return typeof v === 'number' && v < (arg as number);
      case '$lte': return typeof v === 'number' && v <= (arg as number);
      case '$in': return (arg as unknown[]).includes(v);
      case '$nin': return !(arg as unknown[]).includes(v);
      default: return false;
    }
  });
}

async function keywordSide(generation: Generation, query: string, n: number, options: HybridOptions): Promise<StoreHit[]> {
  const hits = generation.store.keyword.search(query, options.filter || options.contains ? n * 4 : n);
  if (hits.length === 0) return [];
  const records = await generation.store.store.getByIds(hits.map((h) => h.id));
  const byId = new Map(records.map((r) => [r.id, r]));
  const out: StoreHit[] = [];
  for (const h of hits) {
    const r = byId.get(h.id);
    if (!r || !matchesFilter(r.metadata, options.filter) || (options.contains && !r.text.includes(options.contains))) continue;
    out.push({ id: h.id, text: r.text, metadata: r.metadata, score: h.score, distance: NaN });
    if (out.length >= n) break;
  }
  return out;
}

async function denseSide(generation: Generation, query: string, n: number, options: HybridOptions): Promise<StoreHit[]> {
  const vector = await generation.embeddings.embedQuery(query);
  return generation.store.store.query(vector, n, options.filter, options.contains ? { $contains: options.contains } : undefined);
}

/**
 * Dense (Chroma) and keyword (BM25) retrieval, run concurrently and fused by weighted reciprocal
 * rank fusion. `score` is the mode's own ranking score: cosine similarity (dense), BM25 (keyword),
 * or the fused RRF score (hybrid); `denseScore` / `keywordScore` say what each side saw.
 */
export async function retrieve(generation: Generation, query: string, options: HybridOptions): Promise<Array<StoreHit & { denseScore?: number; keywordScore?: number }>> {
  const { k, mode } = options;
  if (mode === 'dense') return denseSide(generation, query, k, options);
  if (mode === 'keyword') return keywordSide(generation, query, k, options);
  const n = Math.max(options.candidates ?? 20, k * 4);
  const [dense, keyword] = await Promise.all([denseSide(generation, query, n, options), keywordSide(generation, query, n, options)]);
  const rrfK = options.rrfK ?? 60;
  const w = options.weights ?? { dense: 1, keyword: 1 };
  const fused = new Map<string, { hit: StoreHit; score: number; denseScore?: number; keywordScore?: number }>();
  dense.forEach((h, i) => fused.set(h.id, { hit: h, score: w.dense / (rrfK + i + 1), denseScore: h.score }));
  keyword.forEach((h, i) => {
    const cur = fused.get(h.id);
    const add = w.keyword / (rrfK + i + 1);
    if (cur) {
      cur.score += add;
      cur.keywordScore = h.score;
    } else fused.set(h.id, { hit: h, score: add, keywordScore: h.score });
  });
  return [...fused.values()]
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map((f) => ({
      ...f.hit,
      score: f.score,
      distance: f.hit.distance,
      ...(f.denseScore !== undefined ? { denseScore: f.denseScore } : {}),
      ...(f.keywordScore !== undefined ? { keywordScore: f.keywordScore } : {}),
    }));
}
