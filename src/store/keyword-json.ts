/**
 * A shipped keyword-index.json (format 3: `{format, analysis, df, index}`, `index` being MiniSearch's
 * `toJSON()`) read without building its whole object graph. `JSON.parse` of the file holds every
 * posting as an object property at once: 3.4 MB of JSON at 10,000 chunks took ~135 ms and +68 MiB of
 * RSS (heap +53 MiB) in the build thread, the largest part of a swap's peak memory for a version
 * read through Chroma, and its collection work ran on V8's helper threads at normal priority.
 * Here the file is walked once to find the boundaries of the members of the top object and of
 * MiniSearch's object, and of each entry of its `index` array (term -> postings); every member
 * but that array is then handed to `JSON.parse` whole, and each entry is parsed on its own when
 * the compiler reaches it (young garbage). The result is what `JSON.parse` of the whole text gives
 * (same values, same key order, the last of duplicate keys wins), and a text `JSON.parse` refuses
 * is refused: `JSON.parse` checks every value it is given, and this walk checks everything between
 * them (braces, keys, colons, commas, whitespace). The text is untrusted: any other text throws.
 */

import { grown } from './record-columns.js';

/** An array read lazily: entry t is `JSON.parse`d when asked for (keyword-postings.ts reads each once, in order). */
export class LazyJsonArray {
  constructor(
    private readonly text: string,
    private readonly bounds: Uint32Array,
  ) {}

  get length(): number {
    return this.bounds.length / 2;
  }

  at(t: number): unknown {
    return JSON.parse(this.text.slice(this.bounds[2 * t]!, this.bounds[2 * t + 1]!));
  }

  /**
   * Entry t read into `out` without `JSON.parse`, when its text is in the one form MiniSearch's
   * `toJSON` writes through `JSON.stringify`: `["term",{"field":{"doc":tf,...},...}]` with no
   * whitespace, a term with no escape, canonical integer keys of up to 9 digits in strictly
   * ascending order (so no duplicate, and the order `JSON.parse`'s object would iterate them in)
   * and tf canonical positive integers of up to 9 digits (the number `JSON.parse` gives). Any other
   * text, valid or not, returns false and is left to `at(t)`: what this accepts means exactly what
   * `JSON.parse` of it means, and everything else still goes through `JSON.parse`. At 10,000 chunks
   * this is the whole postings array, read with no object or string per posting (young garbage
   * that V8's helper threads collected at normal priority beside requests).
   */
  scan(t: number, out: EntryScan): boolean {
    const s = this.text;
    const end = this.bounds[2 * t + 1]!;
    let i = this.bounds[2 * t]!;
    if (s.charCodeAt(i) !== 0x5b || s.charCodeAt(i + 1) !== QUOTE) return false;
    i += 2;
    const termStart = i;
    for (;;) {
      if (i >= end) return false;
      const c = s.charCodeAt(i);
      if (c === QUOTE) break;
      if (c < 0x20 || c === BACKSLASH) return false;
      i++;
    }
    const termEnd = i;
    if (s.charCodeAt(i + 1) !== 0x2c || s.charCodeAt(i + 2) !== 0x7b) return false;
    i += 3;
    let fields = 0;
    let postings = 0;
    if (s.charCodeAt(i) === 0x7d) i++;
    else {
      for (let lastField = -1; ; ) {
        const field = this.key(s, i, end);
        if (field <= lastField || fields === out.fieldKey.length || s.charCodeAt(this.next) !== 0x7b) return false;
        lastField = field;
        i = this.next + 1;
        out.fieldKey[fields] = field;
        out.fieldFrom[fields] = postings;
        if (s.charCodeAt(i) === 0x7d) i++;
        else {
          for (let lastDoc = -1; ; ) {
            const doc = this.key(s, i, end);
            if (doc <= lastDoc) return false;
            lastDoc = doc;
            const tf = this.count(s, this.next, end);
            if (tf <= 0) return false;
            if (postings === out.doc.length) out.grow();
            out.doc[postings] = doc;
            out.tf[postings] = tf;
            postings++;
            i = this.next;
            const c = s.charCodeAt(i++);
            if (c === 0x7d) break;
            if (c !== 0x2c) return false;
          }
        }
        out.fieldTo[fields] = postings;
        fields++;
        const c = s.charCodeAt(i++);
        if (c === 0x7d) break;
        if (c !== 0x2c) return false;
      }
    }
    if (s.charCodeAt(i) !== 0x5d || i + 1 !== end) return false;
    out.term = s.slice(termStart, termEnd);
    out.fields = fields;
    return true;
  }

  /** Where the last key() or count() ended. */
  private next = 0;

  /** A `"digits":` key at i (canonical, up to 9 digits) as a number, or -1; `next` is past the colon. */
  private key(s: string, i: number, end: number): number {
    if (s.charCodeAt(i) !== QUOTE) return -1;
    const n = this.count(s, i + 1, end);
    if (n < 0 || s.charCodeAt(this.next) !== QUOTE || s.charCodeAt(this.next + 1) !== 0x3a) return -1;
    this.next += 2;
    return n;
  }

  /** Canonical decimal digits at i (no sign, no leading zero, up to 9 digits) as a number, or -1; `next` is past them. */
  private count(s: string, i: number, end: number): number {
    let n = 0;
    let j = i;
    for (; j < end && j - i < 10; j++) {
      const d = s.charCodeAt(j) - 0x30;
      if (d < 0 || d > 9) break;
      n = n * 10 + d;
    }
    const digits = j - i;
    if (digits === 0 || digits > 9 || (digits > 1 && s.charCodeAt(i) === 0x30)) return -1;
    this.next = j;
    return n;
  }
}

/** One postings entry as LazyJsonArray.scan reads it: fields[f]'s postings are doc/tf[fieldFrom[f], fieldTo[f]). */
export class EntryScan {
  term = '';
  fields = 0;
  readonly fieldKey = new Uint32Array(16);
  readonly fieldFrom = new Uint32Array(16);
  readonly fieldTo = new Uint32Array(16);
  doc = new Uint32Array(4096);
  tf = new Float64Array(4096);

  /** Room for one more posting. */
  grow(): void {
    this.doc = grown(this.doc, this.doc.length + 1);
    this.tf = grown(this.tf, this.tf.length + 1);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isWhite = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

class Walk {
  i = 0;
  constructor(readonly s: string) {}

  fail(what: string): never {
    throw new Error(`${what} at character ${this.i}`);
  }

  white(): void {
    const s = this.s;
    while (this.i < s.length && isWhite(s.charCodeAt(this.i))) this.i++;
  }

  expect(c: number, what: string): void {
    this.white();
    if (this.s.charCodeAt(this.i) !== c) this.fail(`expected ${what}`);
    this.i++;
  }

  /** Past the string starting at i (its content is checked by JSON.parse of the slice that holds it). */
  string(): void {
    const s = this.s;
    if (s.charCodeAt(this.i) !== QUOTE) this.fail('expected a string');
    let i = this.i + 1;
    for (;;) {
      if (i >= s.length) this.fail('unterminated string');
      const c = s.charCodeAt(i);
      if (c === QUOTE) break;
      i += c === BACKSLASH ? 2 : 1;
    }
    this.i = i + 1;
  }

  /** Past the value starting at i (after whitespace): its [start, end) slice; its content is left for JSON.parse. */
  value(): [number, number] {
    this.white();
    const s = this.s;
    const start = this.i;
    if (start >= s.length) this.fail('expected a value');
    const c = s.charCodeAt(start);
    if (c === QUOTE) {
      this.string();
      return [start, this.i];
    }
    if (c === 0x7b || c === 0x5b) {
      // An object or array: to its matching bracket, skipping strings (one loop over locals: this
      // runs over every character of the postings, once per entry).
      const n = s.length;
      let depth = 0;
      let i = start;
      while (i < n) {
        const d = s.charCodeAt(i++);
        if (d === QUOTE) {
          while (i < n) {
            const e = s.charCodeAt(i++);
            if (e === QUOTE) break;
            if (e === BACKSLASH) i++;
          }
        } else if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          if (--depth === 0) {
            this.i = i;
            return [start, i];
          }
        }
      }
      this.i = Math.min(i, n);
      this.fail('unterminated object or array');
    }
    // A number or a literal: up to the next delimiter.
    let i = start;
    while (i < s.length) {
      const d = s.charCodeAt(i);
      if (d === 0x2c || d === 0x7d || d === 0x5d || d === 0x3a || d === QUOTE || d === 0x7b || d === 0x5b || isWhite(d)) break;
      i++;
    }
    if (i === start) this.fail('expected a value');
    this.i = i;
    return [start, i];
  }

  /**
   * The members of the object starting here: [key, valueStart, valueEnd, value] in text order
   * (duplicates kept). A member named `lazy.key` whose value opens with `lazy.open` is walked by
   * `lazy.read` (which leaves `i` past it) and its result kept as `value`; any other's value is
   * UNREAD, left for JSON.parse. (Walking such a value in place, not skipping it to its bracket
   * and walking it again, reads each character of the postings once here, not three times.)
   */
  members(lazy?: LazyMember): Array<[string, number, number, unknown]> {
    this.expect(0x7b, '{');
    const out: Array<[string, number, number, unknown]> = [];
    this.white();
    if (this.s.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return out;
    }
    for (;;) {
      this.white();
      const k0 = this.i;
      this.string();
      const key = JSON.parse(this.s.slice(k0, this.i)) as string;
      this.expect(0x3a, ':');
      this.white();
      if (lazy && key === lazy.key && this.s.charCodeAt(this.i) === lazy.open) {
        const a = this.i;
        const value = lazy.read(this);
        out.push([key, a, this.i, value]);
      } else {
        const [a, b] = this.value();
        out.push([key, a, b, UNREAD]);
      }
      this.white();
      const c = this.s.charCodeAt(this.i);
      this.i++;
      if (c === 0x7d) return out;
      if (c !== 0x2c) {
        this.i--;
        this.fail("expected ',' or '}'");
      }
    }
  }

  /** The [start, end) bounds of each element of the array starting here. */
  elements(): Uint32Array {
    this.expect(0x5b, '[');
    let bounds = new Uint32Array(2048);
    let n = 0;
    this.white();
    if (this.s.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return bounds.subarray(0, 0);
    }
    for (;;) {
      const [a, b] = this.value();
      bounds = grown(bounds, 2 * n + 2);
      bounds[2 * n] = a;
      bounds[2 * n + 1] = b;
      n++;
      this.white();
      const c = this.s.charCodeAt(this.i);
      this.i++;
      if (c === 0x5d) return bounds.slice(0, 2 * n);
      if (c !== 0x2c) {
        this.i--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  end(): void {
    this.white();
    if (this.i !== this.s.length) this.fail('unexpected text after the end');
  }
}

/** An object as JSON.parse makes it from members in text order: own data properties, the last duplicate's value at the first's place. */
function objectOf(members: Array<[string, unknown]>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of members) Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  return o;
}

/** A member walked in place by Walk.members: the one named `key` whose value opens with `open`. */
interface LazyMember {
  key: string;
  open: number;
  read: (w: Walk) => unknown;
}

/** A member value Walk.members left for JSON.parse. */
const UNREAD = Symbol('unread');

/**
 * The object whose members `w` walks from its opening brace, as JSON.parse makes it, except that the
 * last member named `key`, when its value opens with `open`, is what `read` made of it in place (an
 * earlier one of that name is walked too, then JSON.parse'd like any other member).
 */
function objectWith(w: Walk, key: string, open: number, read: (w: Walk) => unknown): Record<string, unknown> {
  const members = w.members({ key, open, read });
  const last = members.findLast(([m]) => m === key);
  return objectOf(members.map(([m, a, b, value]): [string, unknown] => [m, m === key && a === last![1] && value !== UNREAD ? value : JSON.parse(w.s.slice(a, b))]));
}

/**
 * The parsed keyword-index.json as `JSON.parse(text)` would give it, except that `index.index` (when
 * `index` is an object holding an `index` array) is a LazyJsonArray. Throws (a SyntaxError or an
 * Error naming the place) on any text JSON.parse would refuse.
 */
export function parseKeywordJson(text: string): Record<string, unknown> | unknown {
  const w = new Walk(text);
  w.white();
  if (text.charCodeAt(w.i) !== 0x7b) return JSON.parse(text); // not an object: JSON.parse says what it is or why not
  // MiniSearch's object (the last `index`, if an object), and its own `index` (the last one, if an array) read lazily.
  const top = objectWith(w, 'index', 0x7b, (inner) => objectWith(inner, 'index', 0x5b, (entries) => new LazyJsonArray(text, entries.elements())));
  w.end();
  return top;
}
