/**
 * `node dist/bench/ann-choice.js [--n 10000] [--dim 100]`: the measurement behind the choice of
 * the in-process vector index (src/store/vector-scan.ts): exact search in JavaScript, usearch's
 * exact kernel, the WebAssembly SIMD kernel (src/store/simd-kernel.ts, what the service uses), and
 * usearch's HNSW at several `ef`, with top-10 agreement against exact. Per query times are medians of
 * five passes over the queries (this machine's 2 shared cores are noisy).
 * Clustered random unit vectors (a harder case for HNSW than real text embeddings).
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { VectorRows } from '../src/store/simd-kernel.js';
import { normalizeRows, VectorMatrix } from '../src/store/vector-scan.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '10000' }, dim: { type: 'string', default: '100' }, queries: { type: 'string', default: '200' } } });
const N = Number(values.n);
const D = Number(values.dim);
const Q = Number(values.queries);
const K = 10;
const usearch = createRequire(import.meta.url)('usearch') as typeof import('usearch');

let s = 1;
const r = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff), s / 0x7fffffff - 0.5);
const unit = (v: Float32Array) => {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  return v.map((x) => x / n);
};
const data = new Float32Array(N * D);
for (let i = 0; i < N; i++) data.set(unit(Float32Array.from({ length: D }, (_, j) => r() + (j % 7 === i % 7 ? 0.3 : 0))), i * D);
const queries = Array.from({ length: Q }, (_, q) => unit(Float32Array.from({ length: D }, (_, j) => r() + (j % 5 === q % 5 ? 0.3 : 0))));

const m = new VectorMatrix(data, N, D, 'cosine');
const rows = VectorRows.allocate(N, D);
if (!rows) throw new Error(`the SIMD kernel cannot serve ${N} x ${D} here`);
rows.rows.set(data);
const simd = new VectorMatrix(rows, N, D, 'cosine', normalizeRows(rows.rows, N, D));
const all = new Uint8Array(N).fill(1);
/** Median ms per query of five passes, and the last pass's top k. */
function timed(search: (q: Float32Array) => number[]): { ms: number; got: number[][] } {
  const times: number[] = [];
  let got: number[][] = [];
  for (let pass = 0; pass < 5; pass++) {
    const t0 = performance.now();
    got = queries.map(search);
    times.push((performance.now() - t0) / Q);
  }
  return { ms: times.sort((a, b) => a - b)[2]!, got };
}
const js = timed((q) => m.search(q, K, all).rows); // the JavaScript scan
const exact = js.got;
const native = timed((q) => m.search(q, K).rows); // usearch's exact kernel
const wasm = timed((q) => simd.search(q, K).rows);
const agree = (got: number[][]) => got.reduce((a, g, i) => a + g.filter((x) => exact[i]!.includes(x)).length, 0) / (Q * K);
console.log(JSON.stringify({ n: N, dim: D, jsExactMs: +js.ms.toFixed(3), usearchExactMs: +native.ms.toFixed(3), usearchExactAgreement: agree(native.got), simdExactMs: +wasm.ms.toFixed(3), simdExactAgreement: agree(wasm.got), kernel: simd.kernel }));
let t: number;
for (const ef of [64, 128, 256]) {
  t = performance.now();
  const idx = new usearch.Index({ dimensions: D, metric: usearch.MetricKind.Cos, quantization: usearch.ScalarKind.F32, connectivity: 16, expansion_add: 128, expansion_search: ef, multi: false });
  const keys = new BigUint64Array(N).map((_, i) => BigInt(i));
  idx.add(keys, data, 1);
  const buildMs = performance.now() - t;
  t = performance.now();
  const got = queries.map((q) => Array.from(idx.search(q, K, 1).keys, Number));
  console.log(JSON.stringify({ n: N, hnswEf: ef, buildMs: Math.round(buildMs), queryMs: +((performance.now() - t) / Q).toFixed(3), agreement: agree(got) }));
}
