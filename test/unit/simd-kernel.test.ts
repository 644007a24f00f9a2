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

describe('int8 first pass: the same top k, bit for bit, as every row in float32 (l2, ip, cosine)', () => {
  /** A prepared matrix and an unprepared copy of the same rows (the float32 path), `space` given. */
  function pair(rowsOf: (r: number, j: number) => number, n: number, d: number, space: 'l2' | 'ip' | 'cosine') {
    const a = VectorRows.allocate(n, d)!;
    const b = VectorRows.allocate(n, d)!;
    for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) a.rows[r * d + j] = rowsOf(r, j);
    b.rows.set(a.rows);
    const na = space === 'cosine' ? normalizeRows(a.rows, n, d) : null;
    const nb = space === 'cosine' ? normalizeRows(b.rows, n, d) : null;
    a.prepare();
    return { fast: new VectorMatrix(a, n, d, space, na), plain: new VectorMatrix(b, n, d, space, nb), rows: a };
  }

  const shapes = [
    ['random', 1003, 100],
    ['clustered (near-ties)', 1003, 100],
    ['random, 36-d (codes padded to 48)', 517, 36],
    ['clustered, 384-d', 300, 384],
  ] as const;
  for (const space of ['cosine', 'ip', 'l2'] as const) {
    for (const [kind, n, d] of shapes) {
      it(`${space}, ${kind}, ${n} x ${d}: filtered or not, k of 1, 10 and more than the rows`, () => {
        const next = random(n + d);
        const centers = Array.from({ length: 7 }, () => Array.from({ length: d }, () => next()));
        const value = kind.startsWith('clustered') ? (r: number, j: number) => centers[r % 7]![j]! + 0.05 * next() : () => next();
        const { fast, plain, rows } = pair(value, n, d, space);
        expect(rows.prepared).toBe(true);
        const someRows = Uint8Array.from({ length: n }, () => (next() > 0.5 ? 1 : 0));
        for (let t = 0; t < 12; t++) {
          const q = kind.startsWith('clustered') ? centers[t % 7]!.map((x) => x + 0.1 * next()) : Array.from({ length: d }, () => next());
          for (const k of [1, 10, n + 5]) {
            for (const allowed of [null, someRows]) expect(fast.search(q, k, allowed)).toEqual(plain.search(q, k, allowed));
          }
        }
      });
    }
  }

  it('bounds every approximation: |approximate - float32 score| <= the bound it returns, dots and squared distances, rows of any shape and scale', () => {
    const n = 400;
    const d = 64;
    const next = random(3);
    const rows = VectorRows.allocate(n, d)!;
    for (let r = 0; r < n; r++) {
      const scale = 10 ** ((r % 9) - 4); // 1e-4 .. 1e4
      for (let j = 0; j < d; j++) rows.rows[r * d + j] = scale * (r % 5 === 0 ? (j === r % d ? 1 : 1e-3 * next()) : next());
    }
    rows.prepare();
    for (let t = 0; t < 30; t++) {
      const qs = 10 ** ((t % 7) - 3);
      for (let j = 0; j < d; j++) rows.query[j] = qs * (t % 3 === 0 ? (j % 17 === 0 ? 1 : 0) : next());
      for (const l2 of [false, true]) {
        const bound = rows.approximate(l2);
        expect(Number.isFinite(bound)).toBe(true);
        const approx = Float32Array.from(rows.scores);
        for (let r = 0; r < n; r++) expect(Math.abs(approx[r]! - rows.exact(r, l2))).toBeLessThanOrEqual(bound);
      }
    }
  });

  it('no i32 overflow at the widest rows: 4,096-d, every code at 127, the query at its limit', () => {
    const n = 5;
    const d = 4096;
    const rows = VectorRows.allocate(n, d)!;
    rows.rows.fill(1);
    rows.rows.fill(-1, d, 2 * d); // row 1 negative
    rows.prepare();
    rows.query.fill(1);
    const bound = rows.approximate();
    expect(Array.from(rows.scores)).toEqual([4096, -4096, 4096, 4096, 4096].map((x) => expect.closeTo(x, 0)));
    // float32 rounding of 4,096-term sums, relative to them: ~5e-4 of 4,096.
    expect(bound).toBeLessThan(4096 * 1e-3);
  });

  it('non-finite rows are never returned, a zero or non-finite query falls back to the float32 scan, both as the float32 path answers', () => {
    const n = 40;
    const d = 8;
    const next = random(5);
    for (const space of ['ip', 'l2'] as const) {
      const { fast, plain, rows } = pair((r, j) => (r === 3 ? Number.NaN : r === 20 && j === 2 ? Number.POSITIVE_INFINITY : next()), n, d, space);
      for (const q of [Array.from({ length: d }, () => next()), new Array<number>(d).fill(0), [Number.NaN, 1, 1, 1, 1, 1, 1, 1]]) {
        for (const k of [1, 5, n]) {
          const got = fast.search(q, k);
          expect(got).toEqual(plain.search(q, k));
          expect(got.rows).not.toContain(3);
          expect(got.rows).not.toContain(20);
        }
      }
      rows.query.fill(0);
      expect(rows.approximate(space === 'l2')).toBeNaN();
    }
  });

  it('a memory with room for the rows only (codes past 4 GiB) is searched in float32: not prepared, the same answers', () => {
    const n = 2000;
    const d = 100;
    const pages = Math.ceil((VectorRows.rowsOffset(n, d) + n * d * 4) / 65536);
    expect(pages * 65536).toBeLessThan(VectorRows.bytes(n, d));
    const memory = new (globalThis as unknown as { WebAssembly: { Memory: new (o: object) => VectorRows['memory'] } }).WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const rows = VectorRows.of(memory, n, d);
    const next = random(8);
    for (let i = 0; i < rows.rows.length; i++) rows.rows[i] = next();
    rows.prepare();
    expect(rows.prepared).toBe(false);
    expect(rows.approximate()).toBeNaN();
    const m = new VectorMatrix(rows, n, d, 'ip');
    const reference = new VectorMatrix(rows.rows.slice(), n, d, 'ip');
    const q = Array.from({ length: d }, () => next());
    expect(m.search(q, 10).rows).toEqual(reference.search(q, 10, new Uint8Array(n).fill(1)).rows);
  });

  it('identical rows in different blocks keep row order, as the float32 scan keeps ties', () => {
    const n = 64;
    const d = 4;
    const { fast, plain } = pair((r) => (r % 16 === 5 ? 1 : 0.25), n, d, 'ip');
    expect(fast.search([1, 1, 1, 1], 3).rows).toEqual([5, 21, 37]);
    expect(fast.search([1, 1, 1, 1], 6)).toEqual(plain.search([1, 1, 1, 1], 6));
  });
});
