/**
 * The exact vector scan's kernel: a WebAssembly SIMD module (128-bit lanes, four rows at a time)
 * that scores every row of a matrix against one query, inner product or squared Euclidean
 * distance, into a score array the caller ranks. Measured on this machine's 2 shared vCPUs (AVX2,
 * `/tmp/s24/es.mjs` and `wasm-proto.mjs`, 10,000 x 100-d): ~100 us a query against ~300 us for
 * usearch's exact search (its prebuilt binary scores a row in ~90 cycles, a scalar loop's pace)
 * and ~1,700 us for plain JavaScript; the query path's largest cost (44% of the event loop's CPU at
 * 1,000 req/s, a `--cpu-prof` of the swap bench).
 *
 * The rows live in the module's memory: a shared `WebAssembly.Memory` the build thread allocates
 * and fills (VectorRows.allocate), and posts to the event loop with the rest of the index, so no
 * row is copied on the event loop. Layout: [query: dim floats][scores: count floats][block bests:
 * one float per full block of BLOCK rows][rows: count x dim floats, from a 64-byte boundary][the
 * first pass's int8 codes, int16 query, row scales and squared norms, one exact score, its facts]. The
 * module is assembled here from its instructions (no toolchain, ~2.4 KB): a generated binary would be
 * a build artefact to keep in step with this code.
 *
 * Ranking: after scoring, a second pass (`max16` / `min16`) writes each full block's best score;
 * the ranking in JavaScript (vector-scan.ts `nearest`) reads a block's rows only when its best can
 * enter the top k, so it looks at a few hundred scores a query instead of every one. The block
 * bests use WebAssembly's NaN-propagating min and max: a block holding a NaN has a NaN best and is
 * always read row by row, so a NaN never hides a better row.
 *
 * The first pass (`prepare` in the build thread, `approximate` and `exact` here): every row scored
 * from int8 codes (`dot8`), a bound on the difference from the float32 kernel, and the rows within
 * the bound of the top k rescored in float32 (vector-scan.ts `nearestRescored`); docs/architecture.md
 * "The int8 first pass".
 */

// The WebAssembly API Node has had since v8, typed as far as this file uses it (the project's
// `lib` is ES2023 without the DOM's, and @types/node 20 declares none of it).
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
interface WasmModule {
  readonly __module: never;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** LEB128, unsigned and signed (the binary format's integers). */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const name = (s: string) => [...uleb(s.length), ...Buffer.from(s, 'utf8')];
const section = (id: number, bytes: number[]) => [id, ...uleb(bytes.length), ...bytes];
const vector = (items: number[][]) => [...uleb(items.length), ...items.flat()];

/** The instructions the kernels use (core and SIMD opcodes of the WebAssembly 2.0 binary format). */
const op = {
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  tee: (i: number) => [0x22, ...uleb(i)],
  i32: (v: number) => [0x41, ...sleb(v)],
  add: [0x6a],
  mul: [0x6c],
  shl: [0x74],
  gtU: [0x4b],
  ltU: [0x49],
  geU: [0x4f],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  f32Add: [0x92],
  f32Sub: [0x93],
  f32Min: [0x96],
  f32Max: [0x97],
  f32Store: (offset: number) => [0x38, 0x02, ...uleb(offset)],
  v128Load: [0xfd, 0x00, 0x02, 0x00],
  v128Zero: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
  f32x4Add: [0xfd, 0xe4, 0x01],
  f32x4Sub: [0xfd, 0xe5, 0x01],
  f32x4Mul: [0xfd, 0xe6, 0x01],
  f32x4Lane: (lane: number) => [0xfd, 0x1f, lane],
  f32x4Min: [0xfd, 0xe8, 0x01],
  f32x4Max: [0xfd, 0xe9, 0x01],
  v128LoadAt: (offset: number) => [0xfd, 0x00, 0x02, ...uleb(offset)],
  f32Load: (offset: number) => [0x2a, 0x02, ...uleb(offset)],
  f32Mul: [0x94],
  f32FromI32: [0xb2],
  i16x8FromLowI8: [0xfd, 0x87, 0x01],
  i16x8FromHighI8: [0xfd, 0x88, 0x01],
  i32x4DotI16: [0xfd, 0xba, 0x01],
  i32x4Add: [0xfd, 0xae, 0x01],
  i32x4Lane: (lane: number) => [0xfd, 0x1b, lane],
  v128Store: [0xfd, 0x0b, 0x02, 0x00],
  f32x4FromI32x4: [0xfd, 0xfa, 0x01],
  f32x4Splat: [0xfd, 0x13],
  /** i8x16.shuffle picking four 32-bit lanes of the two operands (0-3 the first, 4-7 the second). */
  shuffle32: (...lanes: number[]) => [0xfd, 0x0d, ...lanes.flatMap((l) => [l * 4, l * 4 + 1, l * 4 + 2, l * 4 + 3])],
};

/** Rows per block of the ranking's block bests (four 128-bit loads of scores). */
export const BLOCK = 16;

// Locals of a kernel. Parameters (i32, byte addresses): rows, query, scores, count, dim.
const ROWS = 0, QUERY = 1, SCORES = 2, COUNT = 3, DIM = 4;
// i32: the row, the query's cursor and end, four row cursors, a row's bytes.
const R = 5, QP = 6, QEND = 7, P = [8, 9, 10, 11] as const, STRIDE = 12;
// v128: four accumulators, the query's lanes, a difference.
const ACC = [13, 14, 15, 16] as const, QV = 17, DIFF = 18;

/** A function's code entry: its locals (i32s, then v128s, after the parameters) and its instructions. */
function functionBody(i32Locals: number, v128Locals: number, body: number[]): number[] {
  const fn = [...vector([[...uleb(i32Locals), 0x7f], [...uleb(v128Locals), 0x7b]]), ...body];
  return [...uleb(fn.length), ...fn];
}

/**
 * The loops both kernels share: rows four at a time while four are left (four independent
 * accumulators: an add's latency is not on the critical path), then the rest one at a time; for
 * each, the query walked in steps of `qStep` bytes and the rows in steps of `rowStep`.
 */
function scanRows(k: {
  R: number; COUNT: number; STRIDE: number; QP: number; QEND: number; P: readonly number[]; ACC: readonly number[];
  /** Row R's address. */ rowAt: number[];
  /** QP at the query's start, QEND at its end. */ queryStart: number[];
  /** The query's lanes for one step, into locals. */ loadQuery: number[];
  term: (p: number, acc: number) => number[];
  qStep: number; rowStep: number;
  /** Store rows R..R+3 from the four accumulators, row R from ACC[0]. */ store4: number[]; store1: number[];
}): number[] {
  const { R, COUNT, STRIDE, QP, QEND, P, ACC } = k;
  const step = (p: number, by: number) => [...op.get(p), ...op.i32(by), ...op.add, ...op.set(p)];
  const inner = (pointers: readonly number[]) => [
    ...op.loop,
    ...k.loadQuery,
    ...pointers.flatMap((p, i) => k.term(p, ACC[i]!)),
    ...step(QP, k.qStep), ...pointers.flatMap((p) => step(p, k.rowStep)),
    ...op.get(QP), ...op.get(QEND), ...op.ltU, ...op.brIf(0),
    ...op.end,
  ];
  return fourThenOne(
    R,
    COUNT,
    [
      ...k.rowAt, ...op.tee(P[0]!), ...op.get(STRIDE), ...op.add, ...op.tee(P[1]!), ...op.get(STRIDE), ...op.add, ...op.tee(P[2]!), ...op.get(STRIDE), ...op.add, ...op.set(P[3]!),
      ...ACC.flatMap((a) => [...op.v128Zero, ...op.set(a)]),
      ...k.queryStart,
      ...inner(P),
      ...k.store4,
    ],
    [...k.rowAt, ...op.set(P[0]!), ...op.v128Zero, ...op.set(ACC[0]!), ...k.queryStart, ...inner([P[0]!]), ...k.store1],
  );
}

/** for (R = 0; R + 4 <= COUNT; R += 4) four; for (; R < COUNT; R++) one. */
function fourThenOne(R: number, COUNT: number, four: number[], one: number[]): number[] {
  return [
    ...op.i32(0), ...op.set(R),
    ...op.block, ...op.loop,
    ...op.get(R), ...op.i32(4), ...op.add, ...op.get(COUNT), ...op.gtU, ...op.brIf(1),
    ...four,
    ...op.get(R), ...op.i32(4), ...op.add, ...op.set(R),
    ...op.br(0),
    ...op.end, ...op.end,
    ...op.block, ...op.loop,
    ...op.get(R), ...op.get(COUNT), ...op.geU, ...op.brIf(1),
    ...one,
    ...op.get(R), ...op.i32(1), ...op.add, ...op.set(R),
    ...op.br(0),
    ...op.end, ...op.end,
  ];
}

/**
 * One kernel: scores[r] = dot(row r, query), or with `l2` the sum of (row - query)^2.
 * `dim` must be a multiple of 4 (VectorRows.allocate checks it).
 */
function kernel(l2: boolean): number[] {
  const term = (p: number, acc: number) => [
    ...op.get(acc),
    ...op.get(p),
    ...op.v128Load,
    ...(l2 ? [...op.get(QV), ...op.f32x4Sub, ...op.tee(DIFF), ...op.get(DIFF), ...op.f32x4Mul] : [...op.get(QV), ...op.f32x4Mul]),
    ...op.f32x4Add,
    ...op.set(acc),
  ];
  // A row's four lanes summed as (l0 + l1) + (l2 + l3), in a block of four rows and alone alike (the tail, VectorRows.exactDot): the same float either way.
  const lanes = (acc: number) => [...op.get(acc), ...op.f32x4Lane(0), ...op.get(acc), ...op.f32x4Lane(1), ...op.f32Add, ...op.get(acc), ...op.f32x4Lane(2), ...op.get(acc), ...op.f32x4Lane(3), ...op.f32Add, ...op.f32Add];
  const scoreAt = [...op.get(SCORES), ...op.get(R), ...op.i32(2), ...op.shl, ...op.add];
  const body = [
    ...op.get(DIM), ...op.i32(2), ...op.shl, ...op.set(STRIDE),
    ...scanRows({
      R, COUNT, STRIDE, QP, QEND, P, ACC,
      rowAt: [...op.get(ROWS), ...op.get(R), ...op.get(STRIDE), ...op.mul, ...op.add],
      queryStart: [...op.get(QUERY), ...op.tee(QP), ...op.get(STRIDE), ...op.add, ...op.set(QEND)],
      loadQuery: [...op.get(QP), ...op.v128Load, ...op.set(QV)],
      term,
      qStep: 16,
      rowStep: 16,
      store4: [
        ...scoreAt, ...op.tee(P[0]),
        ...lanes(ACC[0]), ...op.f32Store(0),
        ...op.get(P[0]), ...lanes(ACC[1]), ...op.f32Store(4),
        ...op.get(P[0]), ...lanes(ACC[2]), ...op.f32Store(8),
        ...op.get(P[0]), ...lanes(ACC[3]), ...op.f32Store(12),
      ],
      store1: [...scoreAt, ...lanes(ACC[0]), ...op.f32Store(0)],
    }),
    ...op.end,
  ];
  return functionBody(8, 6, body);
}

/**
 * Block bests: out[b] = the greatest (or with `min` the least) of scores[16b .. 16b+15], for the
 * `blocks` full blocks. NaN-propagating (f32x4.max / f32.max): a block holding a NaN gets NaN.
 * Parameters (i32): scores (byte address), blocks, out (byte address).
 */
function blockBests(min: boolean): number[] {
  const SC = 0, NB = 1, OUT = 2, B = 3, V = 4;
  const pick = min ? op.f32x4Min : op.f32x4Max;
  const pick1 = min ? op.f32Min : op.f32Max;
  const body = [
    ...op.i32(0), ...op.set(B),
    ...op.block, ...op.loop,
    ...op.get(B), ...op.get(NB), ...op.geU, ...op.brIf(1),
    ...op.get(SC), ...op.v128LoadAt(0), ...op.get(SC), ...op.v128LoadAt(16), ...pick,
    ...op.get(SC), ...op.v128LoadAt(32), ...op.get(SC), ...op.v128LoadAt(48), ...pick,
    ...pick, ...op.set(V),
    ...op.get(OUT), ...op.get(B), ...op.i32(2), ...op.shl, ...op.add,
    ...op.get(V), ...op.f32x4Lane(0), ...op.get(V), ...op.f32x4Lane(1), ...pick1,
    ...op.get(V), ...op.f32x4Lane(2), ...op.get(V), ...op.f32x4Lane(3), ...pick1, ...pick1,
    ...op.f32Store(0),
    ...op.get(SC), ...op.i32(BLOCK * 4), ...op.add, ...op.set(SC),
    ...op.get(B), ...op.i32(1), ...op.add, ...op.set(B),
    ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
  return functionBody(1, 1, body);
}

/**
 * The quantised kernel: scores[r] = f32(sum_j codes[r][j] * q16[j]) * scales[r] * b, the sum exact
 * in i32 (the caller bounds the codes and the query so that no lane overflows). Codes are int8,
 * `stride` bytes a row (a multiple of 16, zero-padded), the query int16 (2 * stride bytes, zero-padded).
 * Parameters: codes, q16, scales, scores, count, stride (i32), b (f32).
 */
function kernel8(): number[] {
  const CODES = 0, Q16 = 1, SCALES = 2, SC = 3, COUNT = 4, STRIDE = 5, B = 6;
  const R = 7, QP = 8, QEND = 9, P = [10, 11, 12, 13] as const, T = 14;
  const ACC = [15, 16, 17, 18] as const, QLO = 19, QHI = 20, V = 21;
  const term = (p: number, acc: number) => [
    ...op.get(acc),
    ...op.get(p), ...op.v128Load, ...op.tee(V), ...op.i16x8FromLowI8, ...op.get(QLO), ...op.i32x4DotI16, ...op.i32x4Add,
    ...op.get(V), ...op.i16x8FromHighI8, ...op.get(QHI), ...op.i32x4DotI16, ...op.i32x4Add,
    ...op.set(acc),
  ];
  const lanes = (acc: number) => [...op.get(acc), ...op.i32x4Lane(0), ...op.get(acc), ...op.i32x4Lane(1), ...op.add, ...op.get(acc), ...op.i32x4Lane(2), ...op.get(acc), ...op.i32x4Lane(3), ...op.add, ...op.add];
  const pairs = (x: number, y: number) => [...op.get(x), ...op.get(y), ...op.shuffle32(0, 1, 4, 5), ...op.get(x), ...op.get(y), ...op.shuffle32(2, 3, 6, 7), ...op.i32x4Add];
  const rowT = [...op.get(R), ...op.i32(2), ...op.shl, ...op.set(T)];
  const body = [
    ...scanRows({
      R, COUNT, STRIDE, QP, QEND, P, ACC,
      rowAt: [...op.get(CODES), ...op.get(R), ...op.get(STRIDE), ...op.mul, ...op.add],
      queryStart: [...op.get(Q16), ...op.tee(QP), ...op.get(STRIDE), ...op.i32(1), ...op.shl, ...op.add, ...op.set(QEND)],
      loadQuery: [...op.get(QP), ...op.v128LoadAt(0), ...op.set(QLO), ...op.get(QP), ...op.v128LoadAt(16), ...op.set(QHI)],
      term,
      qStep: 32,
      rowStep: 16,
      // scores[R..R+3] = f32([sum A, sum B, sum C, sum D]) * scales[R..R+3] * b, four at once (integer sums: their order does not matter).
      store4: [
        ...rowT,
        ...op.get(SC), ...op.get(T), ...op.add,
        ...pairs(ACC[0], ACC[1]), ...op.set(ACC[0]), ...pairs(ACC[2], ACC[3]), ...op.set(ACC[2]),
        ...op.get(ACC[0]), ...op.get(ACC[2]), ...op.shuffle32(0, 2, 4, 6), ...op.get(ACC[0]), ...op.get(ACC[2]), ...op.shuffle32(1, 3, 5, 7), ...op.i32x4Add,
        ...op.f32x4FromI32x4,
        ...op.get(SCALES), ...op.get(T), ...op.add, ...op.v128Load, ...op.f32x4Mul,
        ...op.get(B), ...op.f32x4Splat, ...op.f32x4Mul,
        ...op.v128Store,
      ],
      store1: [
        ...rowT,
        ...op.get(SC), ...op.get(T), ...op.add, ...lanes(ACC[0]), ...op.f32FromI32, ...op.get(SCALES), ...op.get(T), ...op.add, ...op.f32Load(0), ...op.f32Mul, ...op.get(B), ...op.f32Mul, ...op.f32Store(0),
      ],
    }),
    ...op.end,
  ];
  return functionBody(8, 7, body);
}

/**
 * Dots to squared distances: scores[r] = norms2[r] - 2 scores[r] + qq, four at a time, then the
 * rest one at a time (nothing past `count` is written). Parameters: scores, norms2, count (i32), qq (f32).
 */
function toL2(): number[] {
  const SC = 0, N2 = 1, COUNT = 2, QQ = 3, R = 4, T = 5, QV = 6;
  const at = (base: number) => [...op.get(base), ...op.get(T), ...op.add];
  const body = [
    ...op.get(QQ), ...op.f32x4Splat, ...op.set(QV),
    ...fourThenOne(
      R,
      COUNT,
      [
        ...op.get(R), ...op.i32(2), ...op.shl, ...op.set(T),
        ...at(SC),
        ...at(N2), ...op.v128Load, ...at(SC), ...op.v128Load, ...at(SC), ...op.v128Load, ...op.f32x4Add, ...op.f32x4Sub, ...op.get(QV), ...op.f32x4Add,
        ...op.v128Store,
      ],
      [
        ...op.get(R), ...op.i32(2), ...op.shl, ...op.set(T),
        ...at(SC),
        ...at(N2), ...op.f32Load(0), ...at(SC), ...op.f32Load(0), ...at(SC), ...op.f32Load(0), ...op.f32Add, ...op.f32Sub, ...op.get(QQ), ...op.f32Add,
        ...op.f32Store(0),
      ],
    ),
    ...op.end,
  ];
  return functionBody(2, 1, body);
}

/**
 * The module: one imported shared memory (up to 4 GiB); the float32 kernels exported as `dot` and
 * `l2`, the block bests as `max16` and `min16`, the first pass's kernel as `dot8` and its
 * dots-to-distances pass as `toL2`.
 */
export function kernelModuleBytes(): Uint8Array {
  const i32 = [0x7f];
  const types = section(1, vector([[0x60, ...vector([i32, i32, i32, i32, i32]), 0x00], [0x60, ...vector([i32, i32, i32]), 0x00], [0x60, ...vector([i32, i32, i32, i32, i32, i32, [0x7d]]), 0x00], [0x60, ...vector([i32, i32, i32, [0x7d]]), 0x00]]));
  const imports = section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]]));
  const functions = section(3, vector([[0x00], [0x00], [0x01], [0x01], [0x02], [0x03]]));
  const exports = section(7, vector([[...name('dot'), 0x00, 0x00], [...name('l2'), 0x00, 0x01], [...name('max16'), 0x00, 0x02], [...name('min16'), 0x00, 0x03], [...name('dot8'), 0x00, 0x04], [...name('toL2'), 0x00, 0x05]]));
  const code = section(10, vector([kernel(false), kernel(true), blockBests(false), blockBests(true), kernel8(), toL2()]));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...types, ...imports, ...functions, ...exports, ...code]);
}

let compiled: WasmModule | null | undefined;
/** The compiled module (once per thread; ~1 ms), or null where this runtime has no WebAssembly SIMD or shared memory. */
export function kernelModule(): WasmModule | null {
  if (compiled === undefined) {
    try {
      compiled = process.env.RAG_VECTOR_KERNEL === 'js' || process.env.RAG_VECTOR_KERNEL === 'usearch' ? null : new wasm.Module(kernelModuleBytes());
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

const PAGE = 65536;
/** The most a wasm32 memory holds. */
const MAX_BYTES = 65536 * PAGE;

type Kernel = (rows: number, query: number, scores: number, count: number, dim: number) => void;
type Bests = (scores: number, blocks: number, out: number) => void;
type Kernel8 = (codes: number, q16: number, scales: number, scores: number, count: number, stride: number, b: number) => void;
type ToL2 = (scores: number, norms2: number, count: number, qq: number) => void;

/** Byte addresses of a matrix's parts in its memory (the query's is 0) and the bytes it takes. */
function layout(count: number, dimension: number) {
  const align = (n: number, to: number) => Math.ceil(n / to) * to;
  const scoresAt = dimension * 4;
  const bestsAt = scoresAt + count * 4;
  // Rows from a cache line's start: a row's 128-bit loads then never straddle two lines where dim*4 is a multiple of 64.
  const rowsAt = align(bestsAt + Math.floor(count / BLOCK) * 4, 64);
  // The int8 codes (a row's padded to a multiple of 16 bytes), the int16 query, the rows' scales,
  // one exact score, and the facts prepare() leaves for the event loop.
  const stride8 = align(dimension, 16);
  const codesAt = align(rowsAt + count * dimension * 4, 64);
  const q16At = align(codesAt + count * stride8, 16);
  const scalesAt = q16At + stride8 * 2;
  const norms2At = scalesAt + count * 4;
  const exactAt = norms2At + count * 4;
  const factsAt = align(exactAt + 4, 8);
  return { scoresAt, bestsAt, rowsAt, rowsEnd: rowsAt + count * dimension * 4, stride8, codesAt, q16At, scalesAt, norms2At, exactAt, factsAt, bytes: factsAt + FACTS * 8 };
}

/** The greatest |x| of values[from .. from + count); NaN if one is NaN (it sticks: a comparison with NaN is false). */
function greatestMagnitude(values: Float32Array, from: number, count: number): number {
  let top = 0;
  for (let j = from, end = from + count; j < end; j++) {
    const m = Math.abs(values[j]!);
    if (!(m <= top)) top = m;
  }
  return top;
}

/** Facts of the codes (float64, written by prepare()): prepared (1), the greatest residual norm, the greatest row norm. */
const FACTS = 3;
const U = 2 ** -24;

/**
 * A matrix of `count` rows of `dimension` floats held in a shared WebAssembly memory, with room for
 * one query and one score per row, scored by the SIMD kernels. Made by the build thread
 * (`allocate`, the rows filled through `rows`), its memory posted to the event loop, which wraps the
 * same memory (`of`): no row is copied.
 */
export class VectorRows {
  /** The rows, row-major (a view of the memory). */
  readonly rows: Float32Array;
  /** The query's place in the memory: `score(null, l2)` scores what was written here (no copy). */
  readonly query: Float32Array;
  /** The scores of the last `score` or `approximate` (a view of the memory). */
  readonly scores: Float32Array;
  /** Each full block's best score (greatest dot, least squared distance) as of the last `score` or `approximate`. */
  readonly bests: Float32Array;
  private kernels: { dot: Kernel; l2: Kernel; max16: Bests; min16: Bests; dot8: Kernel8; toL2: ToL2 } | null = null;
  private readonly at: ReturnType<typeof layout>;
  /** The first pass's arrays, or null when the memory holds the rows only (codes would pass 4 GiB). */
  private readonly q: { codes: Int8Array; q16: Int16Array; scales: Float32Array; norms2: Float32Array; exact: Float32Array; facts: Float64Array } | null;
  /** The int16 query's limit: no i32 sum of a row can overflow (stride x 127 x limit < 2^31). */
  private readonly queryLimit: number;

  private constructor(
    readonly memory: WasmMemory,
    readonly count: number,
    readonly dimension: number,
  ) {
    const buffer = memory.buffer;
    const at = layout(count, dimension);
    if (buffer.byteLength < at.rowsEnd) throw new Error(`a vector memory of ${buffer.byteLength} bytes cannot hold ${count} x ${dimension}`);
    this.query = new Float32Array(buffer, 0, dimension);
    this.scores = new Float32Array(buffer, at.scoresAt, count);
    this.bests = new Float32Array(buffer, at.bestsAt, Math.floor(count / BLOCK));
    this.rows = new Float32Array(buffer, at.rowsAt, count * dimension);
    this.at = at;
    // Both threads decide from the memory's size alone, so they agree.
    this.q =
      buffer.byteLength >= at.bytes
        ? {
            codes: new Int8Array(buffer, at.codesAt, count * at.stride8),
            q16: new Int16Array(buffer, at.q16At, at.stride8),
            scales: new Float32Array(buffer, at.scalesAt, count),
            norms2: new Float32Array(buffer, at.norms2At, count),
            exact: new Float32Array(buffer, at.exactAt, 1),
            facts: new Float64Array(buffer, at.factsAt, FACTS),
          }
        : null;
    this.queryLimit = Math.min(32767, Math.floor((2 ** 31 - 1) / (127 * at.stride8)));
  }

  /**
   * Quantise the rows (the build thread, once the rows are final: after a cosine store's scaling):
   * each row as int8 codes times its own scale (its greatest magnitude / 127), with the greatest
   * residual norm ||row - scale * codes|| and the greatest row norm, computed in double precision,
   * for the bound `approximate` gives. A row holding a non-finite value gets a NaN scale: its
   * approximate score is NaN, so it is never a candidate (its exact distance is never finite either).
   */
  prepare(): void {
    if (!this.q) return;
    const { count, dimension: D, rows } = this;
    const { codes, scales, norms2, facts } = this.q;
    const stride = this.at.stride8;
    let maxResidual = 0;
    let maxNorm = 0;
    for (let r = 0; r < count; r++) {
      const o = r * D;
      const top = greatestMagnitude(rows, o, D);
      if (!Number.isFinite(top)) {
        scales[r] = Number.NaN;
        norms2[r] = Number.NaN;
        continue;
      }
      const scale = Math.fround(top / 127);
      scales[r] = scale;
      const inverse = scale === 0 ? 0 : 1 / scale;
      let residual = 0;
      let norm = 0;
      for (let j = 0, w = r * stride; j < D; j++, w++) {
        const x = rows[o + j]!;
        let c = Math.round(x * inverse);
        c = c > 127 ? 127 : c < -127 ? -127 : c;
        codes[w] = c;
        const e = x - scale * c;
        residual += e * e;
        norm += x * x;
      }
      maxResidual = Math.max(maxResidual, Math.sqrt(residual));
      norms2[r] = norm;
      maxNorm = Math.max(maxNorm, Math.sqrt(norm));
    }
    facts[1] = maxResidual;
    facts[2] = maxNorm;
    facts[0] = 1;
  }

  /** The rows were quantised (prepare()), in this thread or the one that posted the memory. */
  get prepared(): boolean {
    return this.q?.facts[0] === 1;
  }

  /**
   * Approximate scores of every row against the query written in `this.query` (the int8 codes
   * against the query as int16; a quarter of the rows' bytes read): dot products, or with `l2`
   * squared distances (||row||^2 - 2 dot + ||q||^2, the row's squared norm measured by prepare()),
   * into the scores, and the block bests (greatest dot, least distance). Returns e such that for
   * every row with a finite approximate score, |approximate - the float32 kernel's score| <= e; NaN
   * when no such bound holds (a zero or non-finite query, not prepared): then use `score`. The dot's
   * bound: the row's residual (<= max residual x ||q||), the query's (<= (max row norm + max
   * residual) x ||q - b d||), and float rounding of both kernels (<= (D + 8) u (max row norm + max
   * residual)(||q|| + ||q - b d||), doubled). The distance's: twice the dot's without its rounding,
   * plus rounding of the float32 l2 kernel, of the squared norm and of this sum, each under
   * (D + 16) u (max row norm + max residual + ||q|| + ||q - b d||)^2, doubled.
   */
  approximate(l2 = false): number {
    if (!this.q || !this.prepared) return Number.NaN;
    const { query, dimension: D } = this;
    const { q16, facts } = this.q;
    const { at } = this;
    const top = greatestMagnitude(query, 0, D);
    if (!Number.isFinite(top) || top === 0) return Number.NaN;
    const b = Math.fround(top / this.queryLimit);
    let qq = 0;
    let ff = 0;
    for (let j = 0; j < D; j++) {
      const x = query[j]!;
      const d = Math.max(-this.queryLimit, Math.min(this.queryLimit, Math.round(x / b)));
      q16[j] = d;
      qq += x * x;
      ff += (x - b * d) ** 2;
    }
    const k = this.instance();
    k.dot8(at.codesAt, at.q16At, at.scalesAt, at.scoresAt, this.count, at.stride8, b);
    if (l2) k.toL2(at.scoresAt, at.norms2At, this.count, Math.fround(qq));
    (l2 ? k.min16 : k.max16)(at.scoresAt, this.bests.length, at.bestsAt);
    const maxResidual = facts[1]!;
    const maxNorm = facts[2]!;
    const qNorm = Math.sqrt(qq);
    const fNorm = Math.sqrt(ff);
    const rowBound = maxNorm + maxResidual;
    const quantisation = maxResidual * qNorm + rowBound * fNorm;
    if (l2) return 2 * quantisation + 2 * (D + 16) * U * (rowBound + qNorm + fNorm) ** 2 * 1.01;
    return quantisation + 2 * (D + 8) * U * rowBound * (qNorm + fNorm) * 1.01;
  }

  /** Row r's float32 score against the query in `this.query` (the kernel on that row alone: the same float sums as `score`): its dot, or with `l2` its squared distance. */
  exact(r: number, l2 = false): number {
    const k = this.instance();
    (l2 ? k.l2 : k.dot)(this.at.rowsAt + r * this.dimension * 4, 0, this.at.exactAt, 1, this.dimension);
    return this.q!.exact[0]!;
  }

  private instance(): NonNullable<VectorRows['kernels']> {
    if (!this.kernels) {
      const { exports } = new wasm.Instance(kernelModule()!, { env: { memory: this.memory } });
      this.kernels = { dot: exports.dot as Kernel, l2: exports.l2 as Kernel, max16: exports.max16 as Bests, min16: exports.min16 as Bests, dot8: exports.dot8 as Kernel8, toL2: exports.toL2 as ToL2 };
    }
    return this.kernels;
  }

  /** Bytes the layout takes. */
  static bytes(count: number, dimension: number): number {
    return layout(count, dimension).bytes;
  }

  /** Byte offset of the rows in the memory (a thread that fills a memory it made itself writes them there). */
  static rowsOffset(count: number, dimension: number): number {
    return layout(count, dimension).rowsAt;
  }

  /**
   * A zeroed matrix in a new shared memory, or null where the kernel cannot serve it (no
   * WebAssembly SIMD here, a dimension that is not a multiple of 4, no rows, or more than 4 GiB):
   * then the caller keeps a plain Float32Array and the scan falls back to usearch or JavaScript.
   */
  static allocate(count: number, dimension: number): VectorRows | null {
    if (!kernelModule() || count <= 0 || dimension <= 0 || dimension % 4 !== 0) return null;
    const at = layout(count, dimension);
    // The first pass's codes where they fit in 4 GiB; else the rows alone (searched in float32 only).
    const bytes = at.bytes <= MAX_BYTES ? at.bytes : at.rowsEnd;
    if (bytes > MAX_BYTES) return null;
    const pages = Math.ceil(bytes / PAGE);
    let memory: WasmMemory;
    try {
      memory = new wasm.Memory({ initial: pages, maximum: pages, shared: true });
    } catch {
      return null;
    }
    return new VectorRows(memory, count, dimension);
  }

  /** The rows of a memory made by `allocate` (in another thread). Throws when the memory is too small for them. */
  static of(memory: WasmMemory, count: number, dimension: number): VectorRows {
    return new VectorRows(memory, count, dimension);
  }

  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /**
   * Every row scored against `query` (inner product, or with `l2` the squared Euclidean
   * distance), or against the query already written into `this.query` when it is null; then each
   * full block's best into `bests`. The scores are a view of the memory: read them before the next
   * call. One thread scores (the event loop): the query and the scores have one place each in the
   * memory.
   */
  score(query: Float32Array | null, l2: boolean): Float32Array {
    if (query && query.length !== this.dimension) throw new Error(`query has ${query.length} dimensions, the rows ${this.dimension}`);
    const k = this.instance();
    if (query) this.query.set(query);
    const { at } = this;
    (l2 ? k.l2 : k.dot)(at.rowsAt, 0, at.scoresAt, this.count, this.dimension);
    (l2 ? k.min16 : k.max16)(at.scoresAt, this.bests.length, at.bestsAt);
    return this.scores;
  }
}
