import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { RagError } from '../errors.js';
import { PageColumns } from './page-columns.js';
import type { VectorRows } from './simd-kernel.js';
import { grown } from './record-columns.js';

/**
 * A collection's records read page by page straight from Chroma's REST API (`POST .../get`), for
 * the build thread (index-worker.ts): a loader child, or the CHROMA_URL server (http or https) whose
 * documents make the keyword index. The chromadb client does the same through fetch, which costs
 * the build thread (measured with `--cpu-prof` of `swap-probe --chunks 10000`, 8 builds):
 * - loading undici, ~40 ms of CPU in every fresh thread;
 * - decoding every response to one string and `JSON.parse` of it, ~150 ms per 10k x 100-d read,
 *   most of it the embeddings: a million numbers made into 10,000 JavaScript arrays, copied into
 *   the Float32Array and left to the garbage collector.
 * Here the embeddings are parsed from the response bytes straight into a Float32Array
 * (parseGetResponse); only the rest (ids, documents, metadata) is decoded and parsed as JSON.
 * Chroma stays the only reader of its files: this is its own HTTP answer, read differently.
 */

/** Where a collection is: what the event loop learnt when it opened it (ChromaStore). */
export interface CollectionRef {
  url: string;
  tenant: string;
  database: string;
  id: string;
  name: string;
}

/** One page: rows in Chroma's order; `embeddings` rows x dimension, row-major (null when not asked for). */
export interface RecordPage {
  ids: string[];
  documents: Array<string | null>;
  metadatas: Array<Record<string, unknown> | null>;
  embeddings: Float32Array | null;
}

/** A response that is not the JSON Chroma sends (or holds a vector of the wrong length). */
export class PageFormatError extends Error {}

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * Parse the body of Chroma's `get` answer. The `embeddings` value is read from the bytes into a
 * Float32Array of `dimension`-long rows; each number is the one `JSON.parse` gives (a decimal
 * of at most 15 digits and a power of ten up to 22 is one correctly rounded division or
 * multiplication, as exact as JSON.parse; any other is handed to Number()), stored as float32 as
 * Float32Array.set would. Everything else goes through JSON.parse with that value replaced by
 * null. A vector of another length, a non-number in a vector (Chroma writes NaN as null) or
 * malformed JSON is a PageFormatError.
 */
export function parseGetResponse(body: Uint8Array, dimension: number): RecordPage {
  const p = new PageParser(body, dimension);
  const found = p.findEmbeddings();
  const rest = found ? Buffer.concat([body.subarray(0, found.start), NULL_BYTES, body.subarray(found.end)]) : body;
  let parsed: { ids?: unknown; documents?: unknown; metadatas?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(rest.buffer, rest.byteOffset, rest.byteLength).toString('utf8')) as typeof parsed;
  } catch (cause) {
    throw new PageFormatError(`the answer is not JSON: ${(cause as Error).message.slice(0, 200)}`, { cause });
  }
  if (!parsed || typeof parsed !== 'object' || !Array.isArray(parsed.ids)) throw new PageFormatError('the answer has no ids');
  const ids = parsed.ids as unknown[];
  if (!ids.every((id): id is string => typeof id === 'string')) throw new PageFormatError('an id is not a string');
  const documents = (Array.isArray(parsed.documents) ? parsed.documents : []) as Array<string | null>;
  const metadatas = (Array.isArray(parsed.metadatas) ? parsed.metadatas.map(deserializeMetadata) : []) as Array<Record<string, unknown> | null>;
  let embeddings: Float32Array | null = null;
  if (found?.rows) {
    const { rows } = found;
    if (rows.badRow !== null) {
      throw new PageFormatError(`record ${ids[rows.badRow.row] ?? `#${rows.badRow.row}`} has a ${rows.badRow.length}-d vector, expected ${dimension}`);
    }
    if (rows.count !== ids.length) throw new PageFormatError(`the answer holds ${rows.count} vectors for ${ids.length} ids`);
    embeddings = rows.data.subarray(0, rows.count * dimension);
  }
  return { ids: ids as string[], documents, metadatas, embeddings };
}

const NULL_BYTES = Buffer.from('null');

/**
 * Metadata as the chromadb client (3.5) returns it: a value serialised as a sparse vector
 * (`{"#type": "sparse_vector", indices, values}`) becomes `{indices, values}`; the rest as is.
 */
function deserializeMetadata(m: unknown): unknown {
  if (m === null || typeof m !== 'object') return m ?? null;
  let out: Record<string, unknown> | null = null;
  for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
    if (isSparseVector(v)) {
      out ??= { ...(m as Record<string, unknown>) };
      out[k] = { indices: v.indices, values: v.values };
    }
  }
  return out ?? m;
}

function isSparseVector(v: unknown): v is { indices: number[]; values: number[] } {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return (
    c['#type'] === 'sparse_vector' &&
    Array.isArray(c.indices) &&
    Array.isArray(c.values) &&
    c.indices.every((e) => typeof e === 'number') &&
    c.values.every((e) => typeof e === 'number')
  );
}

interface ParsedRows {
  data: Float32Array;
  count: number;
  badRow: { row: number; length: number } | null;
}

/** A scanner over one JSON object's bytes that finds its top-level "embeddings" value and parses it. */
class PageParser {
  private pos = 0;

  constructor(
    private readonly b: Uint8Array,
    private readonly dimension: number,
  ) {}

  private fail(what: string): never {
    throw new PageFormatError(`malformed answer at byte ${this.pos}: ${what}`);
  }

  private ws(): void {
    const b = this.b;
    let c = b[this.pos];
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[++this.pos];
  }

  /** At a '"': past the closing one. */
  private skipString(): void {
    const b = this.b;
    const n = b.length;
    let i = this.pos + 1;
    for (;;) {
      if (i >= n) this.fail('unterminated string');
      const c = b[i++];
      if (c === 0x22) break;
      if (c === 0x5c) i++;
    }
    this.pos = i;
  }

  /** Past one value of any kind (strings inside brackets skipped whole). */
  private skipValue(): void {
    const b = this.b;
    const c = b[this.pos];
    if (c === 0x22) return this.skipString();
    if (c === 0x5b || c === 0x7b) {
      let depth = 0;
      const n = b.length;
      while (this.pos < n) {
        const d = b[this.pos];
        if (d === 0x22) {
          this.skipString();
          continue;
        }
        if (d === 0x5b || d === 0x7b) depth++;
        else if (d === 0x5d || d === 0x7d) {
          depth--;
          if (depth === 0) {
            this.pos++;
            return;
          }
        }
        this.pos++;
      }
      this.fail('unterminated array or object');
    }
    // A number or a literal: up to the next delimiter (JSON.parse of the rest checks it).
    while (this.pos < b.length) {
      const d = b[this.pos];
      if (d === 0x2c || d === 0x5d || d === 0x7d || d === 0x20 || d === 0x0a || d === 0x0d || d === 0x09) return;
      this.pos++;
    }
  }

  /** The top-level key at a '"', decoded. */
  private readKey(): string {
    const start = this.pos;
    this.skipString();
    const raw = this.b.subarray(start, this.pos);
    // Chroma's keys are plain ASCII; one with an escape is decoded by JSON.parse.
    if (raw.includes(0x5c)) return JSON.parse(Buffer.from(raw).toString('utf8')) as string;
    return Buffer.from(raw.buffer, raw.byteOffset + 1, raw.byteLength - 2).toString('latin1');
  }

  /** The byte range of the top-level "embeddings" value and its rows (null rows: the value is null); null when there is no such key. */
  findEmbeddings(): { start: number; end: number; rows: ParsedRows | null } | null {
    const b = this.b;
    this.ws();
    if (b[this.pos] !== 0x7b) this.fail('expected an object');
    this.pos++;
    let found: { start: number; end: number; rows: ParsedRows | null } | null = null;
    for (;;) {
      this.ws();
      if (b[this.pos] === 0x7d) return found;
      if (b[this.pos] !== 0x22) this.fail('expected a key');
      const key = this.readKey();
      this.ws();
      if (b[this.pos] !== 0x3a) this.fail("expected ':'");
      this.pos++;
      this.ws();
      const start = this.pos;
      if (key === 'embeddings' && found === null) {
        const rows = this.parseRows();
        found = { start, end: this.pos, rows };
      } else this.skipValue();
      this.ws();
      const c = b[this.pos];
      if (c === 0x2c) this.pos++;
      else if (c === 0x7d) return found;
      else this.fail("expected ',' or '}'");
    }
  }

  /** `null`, or an array of number arrays. */
  private parseRows(): ParsedRows | null {
    const b = this.b;
    if (b[this.pos] === 0x6e && b[this.pos + 1] === 0x75 && b[this.pos + 2] === 0x6c && b[this.pos + 3] === 0x6c) {
      this.pos += 4;
      return null;
    }
    if (b[this.pos] !== 0x5b) this.fail('expected the embeddings array');
    this.pos++;
    const dim = this.dimension;
    let data = new Float32Array(Math.max(1, dim) * 64);
    let count = 0;
    let badRow: ParsedRows['badRow'] = null;
    this.ws();
    if (b[this.pos] === 0x5d) {
      this.pos++;
      return { data, count, badRow };
    }
    for (;;) {
      this.ws();
      if (b[this.pos] !== 0x5b) this.fail('expected a vector');
      this.pos++;
      data = grown(data, (count + 1) * dim);
      const base = count * dim;
      let j = 0;
      this.ws();
      if (b[this.pos] === 0x5d) this.pos++;
      else {
        for (;;) {
          this.ws();
          const v = this.parseNumber();
          if (j < dim) data[base + j] = v;
          j++;
          this.ws();
          const c = b[this.pos++];
          if (c === 0x5d) break;
          if (c !== 0x2c) {
            this.pos--;
            this.fail("expected ',' or ']' in a vector");
          }
        }
      }
      if (j !== dim && badRow === null) badRow = { row: count, length: j };
      count++;
      this.ws();
      const c = b[this.pos++];
      if (c === 0x5d) return { data, count, badRow };
      if (c !== 0x2c) {
        this.pos--;
        this.fail("expected ',' or ']' between vectors");
      }
    }
  }

  /** One JSON number (strict grammar), as JSON.parse would read it. */
  private parseNumber(): number {
    const b = this.b;
    const start = this.pos;
    let i = start;
    let c = b[i];
    const negative = c === 0x2d;
    if (negative) c = b[++i];
    let m = 0;
    let digits = 0;
    let exp10 = 0;
    if (c === 0x30) c = b[++i];
    else if (c !== undefined && c >= 0x31 && c <= 0x39) {
      while (c !== undefined && c >= 0x30 && c <= 0x39) {
        m = m * 10 + (c - 0x30);
        digits++;
        c = b[++i];
      }
    } else {
      this.pos = i;
      this.fail(c === 0x6e ? 'a vector holds null (a NaN or infinite value)' : 'expected a number');
    }
    if (c === 0x2e) {
      c = b[++i];
      if (c === undefined || c < 0x30 || c > 0x39) {
        this.pos = i;
        this.fail('expected a digit after the decimal point');
      }
      while (c !== undefined && c >= 0x30 && c <= 0x39) {
        // Leading zeros of a fraction add no digit to the mantissa.
        if (m !== 0 || c !== 0x30) digits++;
        m = m * 10 + (c - 0x30);
        exp10--;
        c = b[++i];
      }
    }
    if (c === 0x65 || c === 0x45) {
      c = b[++i];
      let expNegative = false;
      if (c === 0x2b || c === 0x2d) {
        expNegative = c === 0x2d;
        c = b[++i];
      }
      if (c === undefined || c < 0x30 || c > 0x39) {
        this.pos = i;
        this.fail('expected a digit in the exponent');
      }
      let e = 0;
      while (c !== undefined && c >= 0x30 && c <= 0x39) {
        if (e < 100_000) e = e * 10 + (c - 0x30);
        c = b[++i];
      }
      exp10 += expNegative ? -e : e;
    }
    this.pos = i;
    if (digits <= 15 && exp10 >= -22 && exp10 <= 22) {
      const v = exp10 < 0 ? m / POW10[-exp10]! : m * POW10[exp10]!;
      return negative ? -v : v;
    }
    // Beyond the exact fast path: the number's text (JSON's number grammar is a subset of Number's).
    return Number(Buffer.from(b.buffer, b.byteOffset + start, i - start).toString('latin1'));
  }
}

/** The status and body of one POST, or a RagError (unreachable, timed out, cancelled). */
function post(agent: Agent | HttpsAgent, url: URL, body: string, timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const req = (url.protocol === 'https:' ? httpsRequest : request)(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': payload.length }, ...(signal ? { signal } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', (err) => reject(new RagError('RAG_STORE_UNAVAILABLE', `reading records: the answer was cut off: ${err.message}`, { cause: err })));
      },
    );
    if (timeoutMs) {
      req.setTimeout(timeoutMs, () => req.destroy(new RagError('RAG_STORE_TIMEOUT', `the Chroma server did not answer within ${timeoutMs} ms`)));
    }
    req.on('error', (err) => {
      if (err instanceof RagError) return reject(err);
      if (signal?.aborted) return reject(new RagError('RAG_RELOAD_CANCELLED', 'reading records was cancelled', { cause: err }));
      reject(new RagError('RAG_STORE_UNAVAILABLE', `reading records: the Chroma server is not reachable (${(err as NodeJS.ErrnoException).code ?? err.message})`, { cause: err }));
    });
    req.end(payload);
  });
}

/**
 * Every record of a collection in pages of `pageSize` (Chroma's order, by offset), with up to
 * `inFlight` pages asked for ahead. With `dimension` set, each page carries its embeddings; the
 * reading stops at a short page or at `total`. The connection is closed when it ends.
 */
export async function* readRecordPages(
  ref: CollectionRef,
  options: { pageSize: number; dimension: number | null; total?: number; inFlight?: number; timeoutMs?: number; signal?: AbortSignal },
): AsyncGenerator<RecordPage> {
  const url = new URL(`/api/v2/tenants/${encodeURIComponent(ref.tenant)}/databases/${encodeURIComponent(ref.database)}/collections/${encodeURIComponent(ref.id)}/get`, ref.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RagError('RAG_STORE_UNAVAILABLE', `reading records: ${ref.url} is not an http:// or https:// URL`);
  const include = options.dimension !== null ? ['documents', 'metadatas', 'embeddings'] : ['documents', 'metadatas'];
  const agentOptions = { keepAlive: true, maxSockets: Math.max(1, options.inFlight ?? 2) };
  const agent = url.protocol === 'https:' ? new HttpsAgent(agentOptions) : new Agent(agentOptions);
  const fetchPage = async (offset: number): Promise<RecordPage> => {
    const res = await post(agent, url, JSON.stringify({ limit: options.pageSize, offset, include }), options.timeoutMs, options.signal);
    if (res.status === 404) throw new RagError('RAG_STORE_COLLECTION_MISSING', `reading records of "${ref.name}": ${res.body.toString('utf8').slice(0, 200)}`);
    if (res.status !== 200) throw new RagError('RAG_STORE_QUERY_FAILED', `reading records of "${ref.name}": HTTP ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
    try {
      return parseGetResponse(res.body, options.dimension ?? 0);
    } catch (err) {
      if (!(err instanceof PageFormatError)) throw err;
      throw new RagError('RAG_STORE_INDEX_LOAD_FAILED', `reading records of "${ref.name}" at offset ${offset}: ${err.message}`, { cause: err });
    }
  };
  try {
    yield* prefetchedPages(fetchPage, options.pageSize, options.inFlight, options.total);
  } finally {
    agent.destroy();
  }
}

/**
 * Pages by offset with up to `inFlight` asked for ahead (each page's request starts before the one
 * before it is handled), until a short or empty page or `total` records: the paging of both this
 * reader and ChromaStore.allRecords.
 */
export async function* prefetchedPages<P extends { ids: readonly unknown[] }>(fetchPage: (offset: number) => Promise<P>, pageSize: number, inFlight = 2, total?: number): AsyncGenerator<P> {
  const depth = Math.max(1, Math.floor(inFlight));
  const queue: Array<Promise<P>> = [];
  let nextOffset = 0;
  const fill = () => {
    while (queue.length < depth && (total === undefined || nextOffset < total)) {
      const page = fetchPage(nextOffset);
      page.catch(() => undefined); // a prefetched page nobody asks for must not reject unhandled
      queue.push(page);
      nextOffset += pageSize;
    }
  };
  fill();
  for (;;) {
    const pending = queue.shift();
    if (!pending) return;
    const page = await pending;
    if (page.ids.length === 0) return;
    const more = page.ids.length === pageSize;
    if (more) fill();
    else queue.length = 0;
    yield page;
    if (!more) return;
  }
}

/**
 * Every record of a collection, in pages, read and joined as the service's build thread reads a
 * store (the build thread itself, the publisher's read-back, the importer), so a serving-index.bin
 * made from it holds the same arrays; fails unless exactly `count` records come. `onPage` sees each
 * page with its texts ('' for a missing one); `onPaged` runs once every record is read, before the
 * columns are joined (a loader child can stop then). With `dimension` the pages are joined into
 * columns and returned; with null only ids, texts and metadata are read and nothing is returned.
 */
export async function readAllRecords(
  ref: CollectionRef,
  count: number,
  options: { dimension: number | null; /** Hold the vectors in the SIMD kernel's memory where it can serve them (the build thread). */ kernelRows?: boolean; pageSize?: number; inFlight?: number; timeoutMs?: number; onPage?: (page: RecordPage, documents: string[]) => void; onPaged?: () => void },
): Promise<(ReturnType<PageColumns['finish']> & { vectors: Float32Array; kernelRows: VectorRows | null; dimension: number; count: number }) | null> {
  const { dimension } = options;
  const columns = dimension === null ? null : new PageColumns(count, dimension, options.kernelRows ?? false);
  let row = 0;
  const pages = readRecordPages(ref, { pageSize: options.pageSize ?? 1000, dimension, total: count, ...(options.inFlight ? { inFlight: options.inFlight } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
  for await (const page of pages) {
    if (row + page.ids.length > count) throw new Error(`the collection holds more than the ${count} records it counted`);
    const documents = page.documents.map((d) => d ?? '');
    columns?.add(page, documents);
    options.onPage?.(page, documents);
    row += page.ids.length;
  }
  if (row !== count) throw new Error(`read ${row} records, the collection counted ${count}`);
  options.onPaged?.();
  return columns && dimension !== null ? { ...columns.finish(), vectors: columns.vectors, kernelRows: columns.kernelRows, dimension, count } : null;
}
