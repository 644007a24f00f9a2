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
 * one float per full block of BLOCK rows][rows: count x dim floats, from a 64-byte boundary]. The
 * module is assembled here from its instructions (no toolchain, ~1.4 KB): a generated binary would be
 * a build artefact to keep in step with this code.
 *
 * Ranking: after scoring, a second pass (`max16` / `min16`) writes each full block's best score;
 * the ranking in JavaScript (vector-scan.ts `nearest`) reads a block's rows only when its best can
 * enter the top k, so it looks at a few hundred scores a query instead of every one. The block
 * bests use WebAssembly's NaN-propagating min and max: a block holding a NaN has a NaN best and is
 * always read row by row, so a NaN never hides a better row.
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
 * One kernel: scores[r] = dot(row r, query), or with `l2` the sum of (row - query)^2. Rows four at a
 * time (four independent accumulators: an add's latency is not on the critical path), then the rest
 * one at a time. `dim` must be a multiple of 4 (VectorRows.allocate checks it).
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
  const step = (p: number) => [...op.get(p), ...op.i32(16), ...op.add, ...op.set(p)];
  const lanes = (acc: number) => [...op.get(acc), ...op.f32x4Lane(0), ...op.get(acc), ...op.f32x4Lane(1), ...op.f32Add, ...op.get(acc), ...op.f32x4Lane(2), ...op.get(acc), ...op.f32x4Lane(3), ...op.f32Add, ...op.f32Add];
  const queryStart = [...op.get(QUERY), ...op.tee(QP), ...op.get(STRIDE), ...op.add, ...op.set(QEND)];
  const scoreAt = [...op.get(SCORES), ...op.get(R), ...op.i32(2), ...op.shl, ...op.add];
  const rowAt = [...op.get(ROWS), ...op.get(R), ...op.get(STRIDE), ...op.mul, ...op.add];
  const body = [
    ...op.get(DIM), ...op.i32(2), ...op.shl, ...op.set(STRIDE),
    ...op.i32(0), ...op.set(R),
    // Four rows at a time while four are left.
    ...op.block, ...op.loop,
    ...op.get(R), ...op.i32(4), ...op.add, ...op.get(COUNT), ...op.gtU, ...op.brIf(1),
    ...rowAt, ...op.tee(P[0]), ...op.get(STRIDE), ...op.add, ...op.tee(P[1]), ...op.get(STRIDE), ...op.add, ...op.tee(P[2]), ...op.get(STRIDE), ...op.add, ...op.set(P[3]),
    ...ACC.flatMap((a) => [...op.v128Zero, ...op.set(a)]),
    ...queryStart,
    ...op.loop,
    ...op.get(QP), ...op.v128Load, ...op.set(QV),
    ...P.flatMap((p, i) => term(p, ACC[i]!)),
    ...step(QP), ...P.flatMap((p) => step(p)),
    ...op.get(QP), ...op.get(QEND), ...op.ltU, ...op.brIf(0),
    ...op.end,
    ...scoreAt, ...op.tee(P[0]),
    ...lanes(ACC[0]), ...op.f32Store(0),
    ...op.get(P[0]), ...lanes(ACC[1]), ...op.f32Store(4),
    ...op.get(P[0]), ...lanes(ACC[2]), ...op.f32Store(8),
    ...op.get(P[0]), ...lanes(ACC[3]), ...op.f32Store(12),
    ...op.get(R), ...op.i32(4), ...op.add, ...op.set(R),
    ...op.br(0),
    ...op.end, ...op.end,
    // The last rows one at a time.
    ...op.block, ...op.loop,
    ...op.get(R), ...op.get(COUNT), ...op.geU, ...op.brIf(1),
    ...rowAt, ...op.set(P[0]),
    ...op.v128Zero, ...op.set(ACC[0]),
    ...queryStart,
    ...op.loop,
    ...op.get(QP), ...op.v128Load, ...op.set(QV),
    ...term(P[0], ACC[0]),
    ...step(QP), ...step(P[0]),
    ...op.get(QP), ...op.get(QEND), ...op.ltU, ...op.brIf(0),
    ...op.end,
    ...scoreAt, ...lanes(ACC[0]), ...op.f32Store(0),
    ...op.get(R), ...op.i32(1), ...op.add, ...op.set(R),
    ...op.br(0),
    ...op.end, ...op.end,
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
 * The module: one imported shared memory (up to 4 GiB); the two kernels exported as `dot` and `l2`,
 * the block bests as `max16` and `min16`.
 */
export function kernelModuleBytes(): Uint8Array {
  const i32 = [0x7f];
  const types = section(1, vector([[0x60, ...vector([i32, i32, i32, i32, i32]), 0x00], [0x60, ...vector([i32, i32, i32]), 0x00]]));
  const imports = section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]]));
  const functions = section(3, vector([[0x00], [0x00], [0x01], [0x01]]));
  const exports = section(7, vector([[...name('dot'), 0x00, 0x00], [...name('l2'), 0x00, 0x01], [...name('max16'), 0x00, 0x02], [...name('min16'), 0x00, 0x03]]));
  const code = section(10, vector([kernel(false), kernel(true), blockBests(false), blockBests(true)]));
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

/** Byte addresses of a matrix's parts in its memory (the query's is 0) and the bytes it takes. */
function layout(count: number, dimension: number): { scoresAt: number; bestsAt: number; rowsAt: number; bytes: number } {
  const scoresAt = dimension * 4;
  const bestsAt = scoresAt + count * 4;
  // Rows from a cache line's start: a row's 128-bit loads then never straddle two lines where dim*4 is a multiple of 64.
  const rowsAt = Math.ceil((bestsAt + Math.floor(count / BLOCK) * 4) / 64) * 64;
  return { scoresAt, bestsAt, rowsAt, bytes: rowsAt + count * dimension * 4 };
}

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
  private readonly scores: Float32Array;
  /** Each full block's best score (greatest dot, least squared distance) as of the last `score`. */
  readonly bests: Float32Array;
  private kernels: { dot: Kernel; l2: Kernel; max16: Bests; min16: Bests } | null = null;
  /** Byte addresses of the rows, the scores and the block bests in the memory (the query's is 0). */
  private readonly rowsAt: number;
  private readonly scoresAt: number;
  private readonly bestsAt: number;

  private constructor(
    readonly memory: WasmMemory,
    readonly count: number,
    readonly dimension: number,
  ) {
    const buffer = memory.buffer;
    const at = layout(count, dimension);
    if (buffer.byteLength < at.bytes) throw new Error(`a vector memory of ${buffer.byteLength} bytes cannot hold ${count} x ${dimension}`);
    this.query = new Float32Array(buffer, 0, dimension);
    this.scores = new Float32Array(buffer, at.scoresAt, count);
    this.bests = new Float32Array(buffer, at.bestsAt, Math.floor(count / BLOCK));
    this.rows = new Float32Array(buffer, at.rowsAt, count * dimension);
    this.rowsAt = at.rowsAt;
    this.scoresAt = at.scoresAt;
    this.bestsAt = at.bestsAt;
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
    const bytes = VectorRows.bytes(count, dimension);
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
    if (!this.kernels) {
      const { exports } = new wasm.Instance(kernelModule()!, { env: { memory: this.memory } });
      this.kernels = { dot: exports.dot as Kernel, l2: exports.l2 as Kernel, max16: exports.max16 as Bests, min16: exports.min16 as Bests };
    }
    if (query) this.query.set(query);
    (l2 ? this.kernels.l2 : this.kernels.dot)(this.rowsAt, 0, this.scoresAt, this.count, this.dimension);
    (l2 ? this.kernels.min16 : this.kernels.max16)(this.scoresAt, this.bests.length, this.bestsAt);
    return this.scores;
  }
}
