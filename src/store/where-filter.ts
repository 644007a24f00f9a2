import { RagError } from '../errors.js';

/**
 * Chroma's `where` and `whereDocument` filters evaluated in process, with Chroma's semantics
 * (checked against a real Chroma server by test/integration/where-filter-differential.test.ts).
 * One implementation for dense and keyword results, whatever backend serves the generation.
 *
 * Semantics (Chroma 1.x, the Rust core behind chromadb 3.x):
 * - `{field: v}` is `{field: {$eq: v}}`; an operator object holds exactly one operator.
 * - `$eq`/`$ne`/`$in`/`$nin` compare by type and value: `true` is not `1`, `"1"` is not `1`.
 * - `$gt`/`$gte`/`$lt`/`$lte` take numbers and only match numeric values.
 * - `$ne` and `$nin` also match records that do not have the field (Chroma evaluates them as
 *   "not ($eq / $in)").
 * - `$and`/`$or` take a list of filters.
 * - whereDocument: `$contains` / `$not_contains` (case-sensitive substring), `$regex` /
 *   `$not_regex` (the pattern compiled by JavaScript's RegExp; Chroma uses Rust's `regex`
 *   crate: the common syntax agrees, look-around and back-references exist only here),
 *   `$and` / `$or`.
 */
export type MetadataValue = string | number | boolean | null | undefined;
export type Metadata = Record<string, MetadataValue | unknown>;
export type WhereFilter = Record<string, unknown>;
export type WhereDocument = Record<string, unknown>;

export type MetadataPredicate = (meta: Metadata | null | undefined) => boolean;
export type DocumentPredicate = (text: string | null | undefined) => boolean;

const invalid = (message: string) => new RagError('RAG_STORE_FILTER_INVALID', message);

type Scalar = string | number | boolean;
const isScalar = (v: unknown): v is Scalar => typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));

/**
 * Same type and value (Chroma keeps strings, numbers and booleans apart). Numbers: an integer
 * value is compared with the operand truncated to an integer, as Chroma does (`{$eq: 1.25}`
 * matches the integer 1 and the float 1.25); a float value with the operand itself.
 */
function same(a: unknown, b: Scalar): boolean {
  if (typeof a !== typeof b) return false;
  if (typeof a === 'number') return Number.isInteger(a) ? a === Math.trunc(b as number) : a === b;
  return a === b;
}

/**
 * How a filter reads a field of a record: given the field's name once, a reader of that field
 * (undefined: the record does not have it). Objects (`objectFields`) and a generation's metadata
 * columns (metadata-columns.ts, by row) are both read through this, so one evaluator serves both.
 */
export type FieldReader<T> = (field: string) => (record: T) => unknown;

/** Fields of plain metadata objects. */
export const objectFields: FieldReader<Metadata | null | undefined> = (field) => (m) => m?.[field];

function compileOperator<T>(field: string, op: string, arg: unknown, read: (record: T) => unknown): (record: T) => boolean {
  switch (op) {
    case '$eq':
    case '$ne': {
      if (!isScalar(arg)) throw invalid(`${field}: ${op} needs a string, number or boolean`);
      return op === '$eq' ? (m) => same(read(m), arg) : (m) => !same(read(m), arg);
    }
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte': {
      if (typeof arg !== 'number' || !Number.isFinite(arg)) throw invalid(`${field}: ${op} needs a number`);
      const cmp = op === '$gt' ? (a: number, b: number) => a > b : op === '$gte' ? (a: number, b: number) => a >= b : op === '$lt' ? (a: number, b: number) => a < b : (a: number, b: number) => a <= b;
      const asInt = Math.trunc(arg);
      return (m) => {
        const v = read(m);
        // Chroma compares an integer value with the operand cast to an integer (truncated).
        return typeof v === 'number' && cmp(v, Number.isInteger(v) ? asInt : arg);
      };
    }
    case '$in':
    case '$nin': {
      if (!Array.isArray(arg) || arg.length === 0 || !arg.every(isScalar)) throw invalid(`${field}: ${op} needs a non-empty list of strings, numbers or booleans`);
      const values = arg as Scalar[];
      // Chroma reads the list with the type of its first element: all strings, all booleans, all
      // integers, or floats (integers allowed after a float); anything else is rejected.
      const first = values[0]!;
      const sameType = values.every((x) => typeof x === typeof first && (typeof first !== 'number' || !Number.isInteger(first) || Number.isInteger(x)));
      if (!sameType) throw invalid(`${field}: ${op} needs values of one type (strings, booleans, integers, or numbers starting with a non-integer)`);
      const hit = (v: unknown) => values.some((x) => same(v, x));
      return op === '$in' ? (m) => hit(read(m)) : (m) => !hit(read(m));
    }
    default:
      throw invalid(`${field}: unknown operator ${op}`);
  }
}

/** Compile a `where` filter once over records read through `fields`; undefined or {} matches all. */
export function compileWhereWith<T>(where: WhereFilter | undefined | null, fields: FieldReader<T>): (record: T) => boolean {
  if (where === undefined || where === null) return () => true;
  if (typeof where !== 'object' || Array.isArray(where)) throw invalid('a where filter must be an object');
  const parts: Array<(record: T) => boolean> = [];
  for (const [key, cond] of Object.entries(where)) {
    if (key === '$and' || key === '$or') {
      if (!Array.isArray(cond) || cond.length === 0) throw invalid(`${key} needs a non-empty list of filters`);
      const subs = cond.map((c) => compileWhereWith(c as WhereFilter, fields));
      parts.push(key === '$and' ? (m) => subs.every((p) => p(m)) : (m) => subs.some((p) => p(m)));
    } else if (key.startsWith('$')) {
      throw invalid(`unknown operator ${key}`);
    } else if (isScalar(cond)) {
      parts.push(compileOperator(key, '$eq', cond, fields(key)));
    } else if (cond && typeof cond === 'object' && !Array.isArray(cond)) {
      const ops = Object.entries(cond as Record<string, unknown>);
      if (ops.length !== 1) throw invalid(`${key}: an operator object needs exactly one operator`);
      parts.push(compileOperator(key, ops[0]![0], ops[0]![1], fields(key)));
    } else {
      throw invalid(`${key}: expected a string, number, boolean or an operator object`);
    }
  }
  if (parts.length === 1) return parts[0]!;
  return (m) => parts.every((p) => p(m));
}

/** Compile a `where` filter once over metadata objects; the predicate runs per record. Undefined or {} matches all. */
export function compileWhere(where: WhereFilter | undefined | null): MetadataPredicate {
  return compileWhereWith(where, objectFields);
}

/** Longest regex pattern accepted (the HTTP layer does not expose $regex; this bounds internal use). */
const MAX_PATTERN = 1000;

/**
 * How a whereDocument filter reads a record's document: `text` its text; `contains`, when given, a
 * faster test of `$contains` for every record at once (a text column searches its bytes:
 * record-columns.ts `containing`), with the same answers as `text(r).includes(needle)`.
 */
export interface DocumentReader<T> {
  text(record: T): string | null | undefined;
  contains?(needle: string): (record: T) => boolean;
}

const plainText: DocumentReader<string | null | undefined> = { text: (t) => t };

/** Compile a `whereDocument` filter once. Undefined matches all. */
export function compileWhereDocument(where: WhereDocument | undefined | null): DocumentPredicate {
  return compileWhereDocumentWith(where, plainText);
}

/** Compile a `whereDocument` filter over records of any shape, read through `doc`. Undefined matches all. */
export function compileWhereDocumentWith<T>(where: WhereDocument | undefined | null, doc: DocumentReader<T>): (record: T) => boolean {
  if (where === undefined || where === null) return () => true;
  if (typeof where !== 'object' || Array.isArray(where)) throw invalid('a whereDocument filter must be an object');
  const parts: Array<(record: T) => boolean> = [];
  for (const [key, arg] of Object.entries(where)) {
    switch (key) {
      case '$and':
      case '$or': {
        if (!Array.isArray(arg) || arg.length === 0) throw invalid(`whereDocument ${key} needs a non-empty list of filters`);
        const subs = arg.map((c) => compileWhereDocumentWith(c as WhereDocument, doc));
        parts.push(key === '$and' ? (r) => subs.every((p) => p(r)) : (r) => subs.some((p) => p(r)));
        break;
      }
      case '$contains':
      case '$not_contains': {
        if (typeof arg !== 'string') throw invalid(`whereDocument ${key} needs a string`);
        const has = doc.contains ? doc.contains(arg) : (r: T) => (doc.text(r) ?? '').includes(arg);
        parts.push(key === '$contains' ? has : (r) => !has(r));
        break;
      }
      case '$regex':
      case '$not_regex': {
        if (typeof arg !== 'string' || arg.length > MAX_PATTERN) throw invalid(`whereDocument ${key} needs a pattern of at most ${MAX_PATTERN} characters`);
        let re: RegExp;
        try {
          re = rustRegex(arg);
        } catch (cause) {
          if (cause instanceof RagError) throw cause;
          throw new RagError('RAG_STORE_FILTER_INVALID', `whereDocument ${key}: invalid pattern: ${(cause as Error).message}`, { cause });
        }
        parts.push(key === '$regex' ? (r) => re.test(doc.text(r) ?? '') : (r) => !re.test(doc.text(r) ?? ''));
        break;
      }
      default:
        throw invalid(`whereDocument: unknown operator ${key}`);
    }
  }
  if (parts.length === 0) throw invalid('whereDocument must not be empty');
  if (parts.length === 1) return parts[0]!;
  return (r) => parts.every((p) => p(r));
}

/** A record filter over both parts; null when nothing filters (the fast path). */
export function compileRecordFilter(
  where: WhereFilter | undefined | null,
  whereDocument: WhereDocument | undefined | null,
): ((meta: Metadata | null | undefined, text: string | null | undefined) => boolean) | null {
  type Pair = readonly [Metadata | null | undefined, string | null | undefined];
  const fields: FieldReader<Pair> = (field) => {
    const read = objectFields(field);
    return (x) => read(x[0]);
  };
  const pass = compileRowFilter(where, whereDocument, fields, (x: Pair) => x[1]);
  return pass ? (m, t) => pass([m, t]) : null;
}

/**
 * A filter over records of any shape: `fields` reads metadata fields, `text` the document (read
 * only when a whereDocument filter is given; a DocumentReader to search a whole column at once).
 * Null when nothing filters (the fast path).
 */
export function compileRowFilter<T>(
  where: WhereFilter | undefined | null,
  whereDocument: WhereDocument | undefined | null,
  fields: FieldReader<T>,
  text: ((record: T) => string | null | undefined) | DocumentReader<T>,
): ((record: T) => boolean) | null {
  const hasWhere = where != null && Object.keys(where).length > 0;
  const hasDoc = whereDocument != null;
  if (!hasWhere && !hasDoc) return null;
  const w = hasWhere ? compileWhereWith(where, fields) : null;
  const d = hasDoc ? compileWhereDocumentWith(whereDocument, typeof text === 'function' ? { text } : text) : null;
  if (w && d) return (r) => w(r) && d(r);
  return w ?? d;
}

/** Rust regex's `\w`: Unicode word characters. */
const WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
const POSIX: Record<string, string> = {
  alpha: '\\p{Alphabetic}', digit: '0-9', alnum: '\\p{Alphabetic}\\p{Nd}', space: '\\s', upper: 'A-Z', lower: 'a-z', punct: '!-\\/:-@\\[-`{-~', word: WORD, xdigit: '0-9A-Fa-f',
};
const SYNTAX = new Set('^$\\.*+?()[]{}|/-'.split(''));

/**
 * Translate a pattern in Rust `regex` syntax (what Chroma runs) into an equivalent JavaScript
 * RegExp: Unicode-aware `\d \s \w \b \B`, `\pL`, POSIX classes, inline flags at the start.
 * What Rust's regex rejects (look-around, back-references) is rejected here too.
 */
export function rustRegex(pattern: string): RegExp {
  let flags = 'u';
  let i = 0;
  const lead = /^\(\?([imsU-]+)\)/.exec(pattern);
  if (lead) {
    if (/[U-]/.test(lead[1]!)) throw invalid(`whereDocument $regex: inline flags ${lead[0]} are not supported`);
    for (const f of new Set(lead[1]!)) flags += f;
    i = lead[0].length;
  }
  let out = '';
  let inClass = false;
  const nb = `(?:(?<![${WORD}])(?=[${WORD}])|(?<=[${WORD}])(?![${WORD}]))`;
  const notB = `(?:(?<=[${WORD}])(?=[${WORD}])|(?<![${WORD}])(?![${WORD}]))`;
  const reject = (what: string) => {
    throw invalid(`whereDocument $regex: ${what} is not supported (Chroma's regex syntax)`);
  };
  while (i < pattern.length) {
    const c = pattern[i]!;
    if (c === '\\') {
      const e = pattern[i + 1];
      if (e === undefined) reject('a trailing backslash');
      i += 2;
      switch (e) {
        case 'd': out += '\\p{Nd}'; break;
        case 's': out += '\\p{White_Space}'; break;
        case 'w': out += inClass ? WORD : `[${WORD}]`; break;
        case 'D': if (inClass) reject('\\D in a class'); out += '\\P{Nd}'; break;
        case 'S': if (inClass) reject('\\S in a class'); out += '\\P{White_Space}'; break;
        case 'W': if (inClass) reject('\\W in a class'); out += `[^${WORD}]`; break;
        case 'b': if (inClass) reject('\\b in a class'); out += nb; break;
        case 'B': if (inClass) reject('\\B in a class'); out += notB; break;
        case 'A': out += '(?<![\\s\\S])'; break;
        case 'z': out += '(?![\\s\\S])'; break;
        case 'p':
        case 'P':
          if (pattern[i] === '{') {
            const end = pattern.indexOf('}', i);
            if (end < 0) reject('an unclosed \\p{');
            out += `\\${e}${pattern.slice(i, end + 1)}`;
            i = end + 1;
          } else {
            out += `\\${e}{${pattern[i] ?? ''}}`;
            i++;
          }
          break;
        case 'x':
          if (pattern[i] === '{') {
            out += '\\u';
          } else out += '\\x';
          break;
        case 'n': case 't': case 'r': case 'f': case 'v': out += `\\${e}`; break;
        default:
          if (/[0-9]/.test(e!)) reject('a back-reference');
          if (/[A-Za-z]/.test(e!)) reject(`the escape \\${e}`);
          out += SYNTAX.has(e!) && (inClass || e !== '-') ? `\\${e}` : `\\u{${e!.codePointAt(0)!.toString(16)}}`;
      }
      continue;
    }
    if (inClass) {
      if (c === '[') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(pattern.slice(i));
        if (!m || !POSIX[m[2]!] || m[1]) reject('a nested class');
        out += POSIX[m![2]!];
        i += m![0].length;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      if (pattern[i] === '^') { out += '^'; i++; }
      if (pattern[i] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      const rest = pattern.slice(i + 2);
      if (rest.startsWith(':')) { out += '(?:'; i += 3; continue; }
      const named = /^P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
      if (named) { out += `(?<${named[1]}>`; i += 2 + named[0].length; continue; }
      reject(/^<?[=!]/.test(rest) ? 'look-around' : 'an inline flag group after the start');
    }
    out += c;
    i++;
  }
  return new RegExp(out, flags);
}
