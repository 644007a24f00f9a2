/**
 * The WebAssembly SIMD kernel of the exact vector scan (simd-kernel.ts) and the matrix that uses it
 * (vector-scan.ts): every score against a double-precision reference, every space's top k against
 * the JavaScript scan, filters, the rows' tail (counts not a multiple of 4), non-finite rows, and the
 * cases it leaves to the other kernels.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { rng } from '../../bench/lib/rng.js';
import { kernelModule, VectorRows } from '../../src/store/simd-kernel.js';
import { normalizeRows, VectorMatrix } from '../../src/store/vector-scan.js';

/** Values in [-1, 1), the same for a seed on every run. */
function random(seed: number): () => number {
  const next = rng(seed);
  return () => next() * 2 - 1;
}

function filled(count: number, dimension: number, seed: number): VectorRows {
  const rows = VectorRows.allocate(count, dimension)!;
  const next = random(seed);
  for (let i = 0; i < rows.rows.length; i++) rows.rows[i] = next();
  return rows;
}

describe('SIMD kernel', () => {
  it('is available on this runtime (else every search falls back to usearch, silently slower)', () => {
    expect(kernelModule()).not.toBeNull();
  });

  for (const [count, dimension] of [[1, 4], [3, 8], [4, 4], [5, 100], [1001, 100], [37, 384]] as const) {
    it(`scores ${count} x ${dimension}: inner product and squared distance equal a double-precision sum within float32 rounding`, () => {
      const m = filled(count, dimension, count * 7 + dimension);
      const next = random(99);
      const q = Float32Array.from({ length: dimension }, () => next());
      for (const l2 of [false, true]) {
        const got = Array.from(m.score(q, l2));
        expect(got).toHaveLength(count);
        got.forEach((s, r) => {
          let want = 0;
          for (let j = 0; j < dimension; j++) {
            const x = m.rows[r * dimension + j]!;
            want += l2 ? (x - q[j]!) ** 2 : x * q[j]!;
          }
          expect(Math.abs(s - want)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want)) * Math.sqrt(dimension));
        });
      }
    });
  }

  it('leaves to the other kernels what it cannot serve: a dimension not a multiple of 4, no rows', () => {
    expect(VectorRows.allocate(10, 3)).toBeNull();
    expect(VectorRows.allocate(10, 102)).toBeNull();
    expect(VectorRows.allocate(0, 100)).toBeNull();
    const plain = new VectorMatrix(new Float32Array(30), 10, 3, 'l2');
    expect(plain.kernel).not.toBe('wasm-simd-exact');
  });

  it('refuses to wrap a memory too small for the rows it is said to hold', () => {
    const m = VectorRows.allocate(100, 100)!;
    expect(() => VectorRows.of(m.memory, 100_000, 100)).toThrow(/cannot hold/);
    expect(() => new VectorMatrix(m, 99, 100, 'l2')).toThrow(/hold 100 x 100/);
  });
});

describe('vector matrix on the SIMD kernel', () => {
  const N = 1003;
  const D = 100;

  for (const space of ['l2', 'ip', 'cosine'] as const) {
    it(`${space}: the same top k as the JavaScript scan, filtered or not, for k of 1, 10 and more than the rows`, () => {
      const simd = filled(N, D, 5);
      const raw = simd.rows.slice();
      const norms = space === 'cosine' ? normalizeRows(simd.rows, N, D) : null;
      const fast = new VectorMatrix(simd, N, D, space, norms);
      expect(fast.kernel).toBe('wasm-simd-exact');
      const reference = new VectorMatrix(raw, N, D, space);
      const everyRow = new Uint8Array(N).fill(1);
      const next = random(11);
      const someRows = Uint8Array.from({ length: N }, () => (next() > 0.6 ? 1 : 0));
      for (let t = 0; t < 20; t++) {
        const q = Array.from({ length: D }, () => next());
        for (const k of [1, 10, N + 5]) {
          for (const allowed of [null, someRows]) {
            const got = fast.search(q, k, allowed);
            const want = reference.search(q, k, allowed ?? everyRow);
            expect(got.rows).toEqual(want.rows);
            // float32 sums against the scan's double ones: within 1e-5 of the distance, relative to it above 1.
            got.distances.forEach((d, i) => expect(Math.abs(d - want.distances[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(d))));
          }
        }
      }
    });
  }

  it("ranks by blocks of 16 rows without losing a row: a NaN beside the best in its block, ties across blocks, a block's best equal to the k-th", () => {
    // 70 rows of 4 dims (4 full blocks and a tail of 6), all far from the query but for the ones set below.
    const N2 = 70;
    const D2 = 4;
    const simd = VectorRows.allocate(N2, D2)!;
    simd.rows.fill(9);
    const set = (r: number, v: number) => simd.rows.fill(v, r * D2, (r + 1) * D2);
    set(16, Number.NaN); // first row of block 1: its best is NaN...
    set(21, 0.5); // ...and this, the nearest row of all (dot: the greatest), is in the same block
    set(40, 1); // block 2, tied with block 3's first row and the tail's last
    set(48, 1);
    set(69, 1);
    set(3, 2); // block 0: worse than the ties
    const raw = simd.rows.slice();
    for (const space of ['l2', 'ip'] as const) {
      const fast = new VectorMatrix(simd, N2, D2, space);
      expect(fast.kernel).toBe('wasm-simd-exact');
      expect(simd.bests).toHaveLength(4);
      // l2 from the origin; ip with a query that makes the same rows nearest (the greatest dot).
      const q = space === 'l2' ? [0, 0, 0, 0] : [-0.25, -0.25, -0.25, -0.25];
      // The oracle: every row's distance in double precision (exact for these values), the NaN row
      // left out, a stable sort (ties in row order).
      const distance = (r: number) => {
        const row = Array.from(raw.subarray(r * D2, (r + 1) * D2));
        return space === 'l2' ? row.reduce((a, x) => a + x * x, 0) : 1 - row.reduce((a, x, j) => a + x * q[j]!, 0);
      };
      const order = Array.from({ length: N2 }, (_, r) => r)
        .filter((r) => Number.isFinite(distance(r)))
        .sort((a, b) => distance(a) - distance(b));
      for (const k of [1, 2, 3, 4, 6, N2]) expect(fast.search(q, k).rows).toEqual(order.slice(0, k));
      expect(fast.search(q, 1).rows).toEqual([21]);
      // Ties keep row order: the k-th equals a later block's best, which is then passed over.
      expect(fast.search(q, 2).rows).toEqual([21, 40]);
      expect(fast.search(q, 4).rows).toEqual([21, 40, 48, 69]);
      expect(Number.isNaN(simd.bests[1])).toBe(true);
    }
  });

  it('never returns a row whose distance is not finite, nor one the filter leaves out', () => {
    const simd = filled(12, 4, 3);
    simd.rows.fill(Number.NaN, 0, 4);
    simd.rows.fill(Number.POSITIVE_INFINITY, 8, 12);
    const m = new VectorMatrix(simd, 12, 4, 'l2');
    const got = m.search([0, 0, 0, 0], 12);
    expect(got.rows).toEqual(expect.not.arrayContaining([0, 2]));
    expect(got.rows).toHaveLength(10);
    got.distances.forEach((d) => expect(Number.isFinite(d)).toBe(true));
    const allowed = new Uint8Array(12);
    allowed[5] = 1;
    allowed[0] = 1;
    expect(m.search([0, 0, 0, 0], 3, allowed).rows).toEqual([5]);
  });

  it('scores rows a worker thread wrote into the memory it posted (as the build thread sends them), without a copy', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const memory = new WebAssembly.Memory({ initial: workerData.pages, maximum: workerData.pages, shared: true });
      const f = new Float32Array(memory.buffer, workerData.rowsAt, workerData.n * workerData.d);
      for (let i = 0; i < f.length; i++) f[i] = (i % 7) - 3;
      parentPort.postMessage({ memory });`;
    const n = 9;
    const d = 8;
    const pages = Math.ceil(VectorRows.bytes(n, d) / 65536);
    const worker = new Worker(code, { eval: true, workerData: { n, d, pages, rowsAt: VectorRows.rowsOffset(n, d) } });
    const { memory } = await new Promise<{ memory: VectorRows['memory'] }>((resolve, reject) => worker.once('message', resolve).once('error', reject));
    await worker.terminate();
    const rows = VectorRows.of(memory, n, d);
    expect(rows.rows[0]).toBe(-3);
    const q = new Float32Array(d).fill(1);
    const scores = Array.from(rows.score(q, false));
    scores.forEach((s, r) => expect(s).toBe(Array.from({ length: d }, (_, j) => ((r * d + j) % 7) - 3).reduce((a, b) => a + b, 0)));
  });
});
