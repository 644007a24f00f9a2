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
      // An object or array: to its matching bracket, skipping strings.
      let depth = 0;
      let i = start;
      for (;;) {
        if (i >= s.length) {
          this.i = i;
          this.fail('unterminated object or array');
        }
        const d = s.charCodeAt(i);
        if (d === QUOTE) {
          this.i = i;
          this.string();
          i = this.i;
          continue;
        }
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          depth--;
          if (depth === 0) {
            this.i = i + 1;
            return [start, this.i];
          }
        }
        i++;
      }
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

  /** The members of the object starting here: [key, valueStart, valueEnd] in text order (duplicates kept). */
  members(): Array<[string, number, number]> {
    this.expect(0x7b, '{');
    const out: Array<[string, number, number]> = [];
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
      const [a, b] = this.value();
      out.push([key, a, b]);
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
      if (2 * n + 2 > bounds.length) {
        const grown = new Uint32Array(bounds.length * 2);
        grown.set(bounds);
        bounds = grown;
      }
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

/**
 * The object whose members `w` walks from its opening brace, as JSON.parse makes it, except that the
 * last member named `key` whose value opens with `open` is made by `lazy(start, end)`; `done` checks
 * where the walk ended.
 */
function objectWith(w: Walk, key: string, open: number, lazy: (start: number, end: number) => unknown, done: () => void): Record<string, unknown> {
  const members = w.members();
  done();
  const last = members.findLast(([m]) => m === key);
  return objectOf(members.map(([m, a, b]): [string, unknown] => [m, m === key && a === last![1] && w.s.charCodeAt(a) === open ? lazy(a, b) : JSON.parse(w.s.slice(a, b))]));
}

/** A Walk of `text` from `at`. */
function walkAt(text: string, at: number): Walk {
  const w = new Walk(text);
  w.i = at;
  return w;
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
  return objectWith(w, 'index', 0x7b, (a, b) => {
    const inner = walkAt(text, a);
    return objectWith(inner, 'index', 0x5b, (c, d) => {
      const entries = walkAt(text, c);
      const bounds = entries.elements();
      if (entries.i !== d) entries.fail("expected ',' or ']'");
      return new LazyJsonArray(text, bounds);
    }, () => {
      if (inner.i !== b) inner.fail("expected ',' or '}'");
    });
  }, () => w.end());
}
