import { createRequire } from 'node:module';
import type { DistanceSpace } from './chroma-store.js';
import { BLOCK, VectorRows } from './simd-kernel.js';

/**
 * Exact nearest-neighbour search over one contiguous Float32Array (row-major, n x dim), with
 * Chroma's distance definitions so scores match what Chroma returns for the same vectors:
 *   l2: squared Euclidean distance; ip: 1 - dot; cosine: 1 - cos.
 *
 * Why exact and not an ANN library (measured, bench/ann-choice.ts, 2 shared cores): exact search
 * answers with 100% agreement by definition and no build time, and at the sizes a generation holds
 * in process it is fast enough: the WebAssembly SIMD kernel (simd-kernel.ts) scores 10k x 100-d in
 * ~0.1 ms a query. usearch's HNSW needed ef=256 to pass 99% top-10 agreement at 10k (0.23 ms per
 * query, 1 s to build). hnswlib-node needs its install script (node-gyp), which npm 11 skips;
 * faiss-node downloads its binary at install time.
 *
 * Kernels, the first that applies: the SIMD kernel on rows held in its memory (the build thread puts
 * them there, VectorRows); usearch's exact search (~0.3 ms at 10k x 100-d here; its prebuilt binary
 * ships inside the package, so it works with install scripts skipped); a JavaScript scan (~1.7 ms),
 * which also serves filtered searches where the SIMD kernel does not.
 */
type UsearchModule = {
  exactSearch(dataset: Float32Array, queries: Float32Array, dimensions: number, count: number, metric: string, threads?: number): { keys: BigUint64Array; distances: Float32Array };
  MetricKind: { IP: string; L2sq: string };
};

let usearchModule: UsearchModule | null | undefined;
/** The native kernel, or null where its binary cannot load (then the JavaScript scan is used). */
export function nativeKernel(): UsearchModule | null {
  if (usearchModule === undefined) {
    try {
      usearchModule = (process.env.RAG_VECTOR_KERNEL === 'js' ? null : createRequire(import.meta.url)('usearch')) as UsearchModule | null;
    } catch {
      usearchModule = null;
    }
  }
  return usearchModule;
}

/**
 * Scale every row to unit length in place and return the rows' original lengths (0 for a zero
 * row, which stays zero). A cosine store is searched this way: 1 - dot on unit rows is the cosine
 * distance, and the native inner-product kernel is ~1.7x faster than its cosine kernel, which
 * computes both norms for every row of every query (3,000 x 100-d: 81 vs 133 us; 10,000: 237 vs
 * 418 us). Run it off the event loop (the index worker does).
 */
export function normalizeRows(data: Float32Array, count: number, dimension: number): Float32Array {
  const norms = new Float32Array(count);
  for (let r = 0, o = 0; r < count; r++, o += dimension) {
    let s = 0;
    for (let j = 0; j < dimension; j++) s += data[o + j]! * data[o + j]!;
    if (!(s > 0)) continue;
    const n = Math.sqrt(s);
    norms[r] = n;
    for (let j = 0; j < dimension; j++) data[o + j] = data[o + j]! / n;
  }
  return norms;
}

export interface ScanResult {
  rows: number[];
  distances: number[];
}

export class VectorMatrix {
  /** The rows; a cosine matrix always holds them at unit length (1 - dot is then the cosine distance). */
  private readonly data: Float32Array;
  /** Cosine: the rows' original lengths (exports scale back); null otherwise. */
  private readonly norms: Float32Array | null;
  /** The rows in the SIMD kernel's memory (then `data` is its view), or null. */
  private readonly simd: VectorRows | null;

  /**
   * `vectors`: the rows, or the rows in the SIMD kernel's memory (VectorRows, as the build thread
   * makes them). `unitNorms` (cosine only): the rows were scaled to unit length (normalizeRows, done by
   * the index worker off the event loop) and these are their original lengths. A cosine matrix given
   * without it scales a copy of its rows here (the caller's array is left as it is).
   */
  constructor(
    vectors: Float32Array | VectorRows,
    readonly count: number,
    readonly dimension: number,
    readonly space: DistanceSpace,
    unitNorms?: Float32Array | null,
  ) {
    let simd = vectors instanceof VectorRows ? vectors : null;
    let data = simd ? simd.rows : (vectors as Float32Array);
    if (simd && (simd.count !== count || simd.dimension !== dimension)) throw new Error(`vector rows hold ${simd.count} x ${simd.dimension}, expected ${count} x ${dimension}`);
    if (data.length !== count * dimension) throw new Error(`vector matrix holds ${data.length} floats, expected ${count} x ${dimension}`);
    if (unitNorms && (space !== 'cosine' || unitNorms.length !== count)) throw new Error(`unit rows need a cosine space and one length per row (${space}, ${unitNorms.length} for ${count})`);
    if (space === 'cosine' && !unitNorms) {
      data = data.slice();
      simd = null;
      unitNorms = normalizeRows(data, count, dimension);
    }
    this.data = data;
    this.simd = simd;
    this.norms = unitNorms ?? null;
  }

  /** Row r as the store holds it (unit rows scaled back to their length: equal to float32 rounding). */
  row(r: number): number[] {
    const v = this.data.subarray(r * this.dimension, (r + 1) * this.dimension);
    const n = this.norms?.[r];
    return n === undefined ? Array.from(v) : Array.from(v, (x) => Math.fround(x * n));
  }

  get kernel(): 'wasm-simd-exact' | 'usearch-exact' | 'js-exact' {
    return this.simd ? 'wasm-simd-exact' : nativeKernel() ? 'usearch-exact' : 'js-exact';
  }

  /** 'int8' when searches go through the int8 first pass (a prepared SIMD matrix). */
  get firstPass(): 'int8' | 'none' {
    return PREFILTER && this.simd?.prepared ? 'int8' : 'none';
  }

  get bytes(): number {
    return (this.simd?.byteLength ?? this.data.byteLength) + (this.norms?.byteLength ?? 0);
  }

  /** The k nearest rows by Chroma's distance, ascending; `allowed` restricts to rows where it says 1. */
  search(query: ArrayLike<number>, k: number, allowed?: Uint8Array | null): ScanResult {
    if (query.length !== this.dimension) throw new Error(`query has ${query.length} dimensions, the index ${this.dimension}`);
    const want = Math.min(k, this.count);
    if (want <= 0) return { rows: [], distances: [] };
    const simd = this.simd;
    if (simd) {
      // Written into the kernel's query slot and scaled there: no copy of the query a search.
      simd.query.set(query);
      if (this.norms) normalizeRows(simd.query, 1, this.dimension);
      const l2 = this.space === 'l2';
      if (PREFILTER) {
        const bound = simd.approximate(l2);
        if (Number.isFinite(bound)) {
          const found = nearestRescored(simd, bound, l2, want, allowed ?? null);
          if (found) return found;
        }
      }
      return nearest(simd.score(null, l2), simd.bests, l2, want, allowed ?? null);
    }
    let q = query instanceof Float32Array ? query : Float32Array.from(query);
    if (this.norms) q = unitCopy(q);
    const native = nativeKernel();
    if (!allowed && native) {
      const metric = this.space === 'l2' ? native.MetricKind.L2sq : native.MetricKind.IP;
      const m = native.exactSearch(this.data, q, this.dimension, want, metric, 1);
      const rows: number[] = [];
      const distances: number[] = [];
      for (let i = 0; i < m.keys.length && rows.length < want; i++) {
        const d = m.distances[i]!;
        if (!Number.isFinite(d)) continue;
        rows.push(Number(m.keys[i]!));
        distances.push(d);
      }
      return { rows, distances };
    }
    return this.scan(q, want, allowed ?? null);
  }

  private scan(q: Float32Array, k: number, allowed: Uint8Array | null): ScanResult {
    const { data, dimension: D, space } = this;
    const top = FIRST.reset(k);
    for (let r = 0, o = 0; r < this.count; r++, o += D) {
      if (allowed && allowed[r] === 0) continue;
      let d: number;
      if (space === 'l2') {
        let s = 0;
        for (let j = 0; j < D; j++) {
          const x = data[o + j]! - q[j]!;
          s += x * x;
        }
        d = s;
      } else {
        let s = 0;
        for (let j = 0; j < D; j++) s += data[o + j]! * q[j]!;
        d = 1 - s; // ip; cosine too, the rows and the query being unit vectors
      }
      if (d < top.worst || top.filled < k) top.add(d, r);
    }
    return top.result(false);
  }
}

/**
 * The k least keys seen and their rows, ascending, ties in the order added: sorted insertion into k
 * slots (k is small, <= a few hundred). Reused by every search (`reset`): a search runs to its end
 * synchronously, and two typed arrays a search cost ~3 us in allocations (a `--cpu-prof` of hybrid
 * requests at c=16: TopK and its row list ~6 us a request).
 */
export class TopK {
  keys: Float64Array;
  private rows: Int32Array;
  private k = 0;
  filled = 0;
  /** The k-th least key once k are held (Infinity before): a key not below it is never kept. */
  worst = Infinity;

  constructor(capacity: number) {
    this.keys = new Float64Array(capacity);
    this.rows = new Int32Array(capacity);
  }

  /** Empty, for a top k (add reads only the slots it filled). */
  reset(k: number): this {
    if (this.keys.length < k) {
      this.keys = new Float64Array(k);
      this.rows = new Int32Array(k);
    }
    this.k = k;
    this.filled = 0;
    this.worst = Infinity;
    return this;
  }

  add(key: number, row: number): void {
    const { keys, rows, k } = this;
    let p = Math.min(this.filled, k - 1);
    while (p > 0 && keys[p - 1]! > key) {
      keys[p] = keys[p - 1]!;
      rows[p] = rows[p - 1]!;
      p--;
    }
    keys[p] = key;
    rows[p] = row;
    if (this.filled < k) this.filled++;
    if (this.filled === k) this.worst = keys[k - 1]!;
  }

  /** The rows held and their distances: the keys, or with `negatedDots` Chroma's 1 - dot in float32 (as usearch and Chroma's kernels give it). */
  result(negatedDots: boolean): ScanResult {
    const rows: number[] = [];
    const distances: number[] = [];
    for (let i = 0; i < this.filled; i++) {
      rows.push(this.rows[i]!);
      distances.push(negatedDots ? Math.fround(1 + this.keys[i]!) : this.keys[i]!);
    }
    return { rows, distances };
  }
}

/** The two holders every search uses: the first pass's (or the only) ranking, and the float32 rescoring's. */
const FIRST = new TopK(64);
const SECOND = new TopK(64);

/**
 * The k rows of least distance from the kernel's scores (squared distances with `l2`, else dot
 * products, the distance then 1 - dot in float32 as usearch and Chroma's kernels give it),
 * ascending, ties in row order; rows `allowed` marks 0 and non-finite distances left out.
 */
function nearest(scores: Float32Array, bests: Float32Array, l2: boolean, k: number, allowed: Uint8Array | null): ScanResult {
  return rank(scores, bests, l2 ? 1 : -1, k, allowed).result(!l2);
}

/**
 * The k least keys (sign x score) of the rows `allowed` leaves in, into FIRST: ranked on the scores
 * themselves (a dot's negation), the distance computed for the k kept only. `bests` holds each full
 * block's best score (VectorRows.score, approximate): a block whose best cannot enter the top k is
 * passed over whole (not below the k-th key: no row of it could be added, ties included); a NaN best
 * (a NaN in the block) never compares, so that block is read row by row.
 */
function rank(scores: Float32Array, bests: Float32Array, sign: number, k: number, allowed: Uint8Array | null): TopK {
  const top = FIRST.reset(k);
  const consider = (from: number, to: number) => {
    for (let r = from; r < to; r++) {
      const key = sign * scores[r]!;
      // Not below the k-th best (NaN and an infinite distance included): never a result.
      if (!(key < top.worst) || key === -Infinity) continue;
      if (allowed && allowed[r] === 0) continue;
      top.add(key, r);
    }
  };
  for (let b = 0; b < bests.length; b++) {
    if (sign * bests[b]! >= top.worst) continue;
    consider(b * BLOCK, (b + 1) * BLOCK);
  }
  consider(bests.length * BLOCK, scores.length);
  return top;
}

/** `RAG_VECTOR_PREFILTER=off`: every row scored in float32 (the int8 first pass left out; for tests and diagnosis). */
const PREFILTER = process.env.RAG_VECTOR_PREFILTER !== 'off';

/**
 * Exact top k from the int8 first pass (VectorRows.approximate, whose scores are within `bound` of
 * the float32 kernel's for every row with a finite one; keys are squared distances with `l2`, else
 * negated dots): the k-th least approximate key U among the rows allowed; every allowed row whose
 * approximate key is at most U + 2 x bound is a candidate (a row of the exact top k has an exact
 * key <= the exact k-th <= U + bound, so an approximate one <= U + 2 x bound), scored again by the
 * float32 kernel, in row order (ties kept in row order, as the full scan keeps them). Null when U is
 * not finite (fewer than k rows with a finite approximation): the caller scans in full.
 */
function nearestRescored(simd: VectorRows, bound: number, l2: boolean, k: number, allowed: Uint8Array | null): ScanResult | null {
  const { scores, bests } = simd;
  const sign = l2 ? 1 : -1;
  const approximate = rank(scores, bests, sign, k, allowed);
  if (approximate.filled < k || !Number.isFinite(approximate.worst)) return null;
  const limit = approximate.worst + 2 * bound;
  const top = SECOND.reset(k);
  const rescore = (r: number) => {
    if (!(sign * scores[r]! <= limit) || (allowed && allowed[r] === 0)) return;
    const key = sign * simd.exact(r, l2);
    if (!(key < top.worst) || key === -Infinity) return;
    top.add(key, r);
  };
  for (let b = 0; b < bests.length; b++) {
    // A block whose best key is past the limit holds no candidate; a NaN best is read row by row.
    if (sign * bests[b]! > limit) continue;
    for (let r = b * BLOCK, end = r + BLOCK; r < end; r++) rescore(r);
  }
  for (let r = bests.length * BLOCK; r < scores.length; r++) rescore(r);
  return top.result(!l2);
}

/** The query scaled to unit length (a copy; a zero query stays zero). */
function unitCopy(q: Float32Array): Float32Array {
  const u = q.slice();
  normalizeRows(u, 1, u.length);
  return u;
}
