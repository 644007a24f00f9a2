import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PageFormatError, parseGetResponse } from '../../src/store/chroma-pages.js';

/**
 * parseGetResponse reads Chroma's `get` answer with the embeddings parsed from the bytes. The
 * reference is what the chromadb client path did: JSON.parse of the whole text, then
 * Float32Array.set of each vector.
 */
const enc = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));

function reference(text: string, dimension: number) {
  const o = JSON.parse(text) as { ids: string[]; documents: Array<string | null> | null; metadatas: unknown[] | null; embeddings: number[][] | null };
  const emb = o.embeddings ? new Float32Array(o.embeddings.length * dimension) : null;
  o.embeddings?.forEach((e, i) => emb!.set(e, i * dimension));
  return { ids: o.ids, documents: o.documents ?? [], metadatas: o.metadatas ?? [], embeddings: emb };
}

/** The shortest decimal that reads back as this float32 (what Rust's f32 formatting writes), in Rust's style or with an exponent. */
function f32Text(v: number, style: 'plain' | 'exp' | 'EXP+'): string {
  let s = '';
  for (let p = 1; p <= 9; p++) {
    s = v.toPrecision(p);
    if (Math.fround(Number(s)) === v) break;
  }
  const n = Number(s);
  if (style === 'plain') return Object.is(v, -0) ? '-0.0' : String(n);
  const e = n.toExponential();
  return style === 'exp' ? e.replace('e+', 'e') : e.toUpperCase();
}

describe('parseGetResponse: numbers', () => {
  it('every float32 comes out as JSON.parse + Float32Array.set gives it, in plain, exponent and E+ forms (property, 300 pages)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 20 }),
        fc.constantFrom('plain' as const, 'exp' as const, 'EXP+' as const),
        (rows, style) => {
          const text = `{"ids":[${rows.map((_, i) => `"r${i}"`).join(',')}],"embeddings":[${rows.map((r) => `[${r.map((v) => f32Text(v, style)).join(',')}]`).join(',')}],"documents":null,"metadatas":null}`;
          const got = parseGetResponse(enc(text), 3);
          const want = reference(text, 3);
          expect(Array.from(got.embeddings!).map((x) => Object.is(x, -0) ? '-0' : x)).toEqual(Array.from(want.embeddings!).map((x) => Object.is(x, -0) ? '-0' : x));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decimals of 15 to 19 digits that lie next to the midpoint between two float32s round to the same side as JSON.parse (property, 2,000 values)', () => {
    // Here an error of one double ulp flips the float32: an inexact fast path (a mantissa past 2^53,
    // or a power of ten that is not exact) gives another float32 in a good share of these.
    const bits = new Int32Array(1);
    const f = new Float32Array(bits.buffer);
    const nextUp = (v: number) => {
      f[0] = v;
      bits[0] = bits[0]! + (v >= 0 ? 1 : -1);
      return f[0]!;
    };
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-1e6), max: Math.fround(1e6) }).filter((v) => Math.abs(v) > 1e-30), { minLength: 20, maxLength: 20 }),
        fc.integer({ min: 15, max: 19 }),
        fc.boolean(),
        (vs, digits, exp) => {
          const texts = vs.map((v) => {
            const mid = (v + nextUp(v)) / 2;
            return exp ? mid.toExponential(digits - 1) : mid.toPrecision(digits);
          });
          const text = `{"ids":[${texts.map((_, i) => `"r${i}"`).join(',')}],"embeddings":[${texts.map((t) => `[${t}]`).join(',')}]}`;
          expect(Array.from(parseGetResponse(enc(text), 1).embeddings!)).toEqual(Array.from(reference(text, 1).embeddings!));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('doubles written with 17 digits, huge and tiny exponents, integers and -0 take the slow path to the same float32', () => {
    const values = ['0.1', '-0', '-0.0', '0', '1e22', '1e23', '1E-22', '1e-23', '123456789012345678', '0.30000000000000004', '3.4028235e38', '3.5e38', '1.4e-45', '7e-46', '-1.17549435e-38', '0.000000000000000000000000000000000000000001', '1e308', '2.2250738585072014e-308', '12345678901234567890123e-10'];
    const text = `{"ids":[${values.map((_, i) => `"v${i}"`).join(',')}],"embeddings":[${values.map((v) => `[${v}]`).join(',')}]}`;
    const got = Array.from(parseGetResponse(enc(text), 1).embeddings!);
    const want = Array.from(reference(text, 1).embeddings!);
    expect(got.map((x) => (Object.is(x, -0) ? '-0' : x))).toEqual(want.map((x) => (Object.is(x, -0) ? '-0' : x)));
    expect(got).toContain(Infinity); // 3.5e38 is past float32, as Float32Array.set makes it
  });

  it.each([
    ['a leading zero', '[01]'],
    ['a trailing point', '[1.]'],
    ['a bare fraction', '[.5]'],
    ['a lone minus', '[-]'],
    ['an empty exponent', '[1e]'],
    ['a plus sign', '[+1]'],
    ['hex', '[0x10]'],
    ['Infinity', '[Infinity]'],
    ['NaN written as null', '[null]'],
    ['a string', '["1"]'],
    ['two numbers without a comma', '[1 2]'],
    ['a missing bracket', '[1'],
  ])('refuses %s in a vector with PageFormatError', (_what, vector) => {
    expect(() => parseGetResponse(enc(`{"ids":["a"],"embeddings":[${vector}]}`), 1)).toThrow(PageFormatError);
  });
});

describe('parseGetResponse: the rest of the answer', () => {
  const tricky = ['has "embeddings":[[1]] inside', 'brackets ] } [ { and a \\ backslash', 'ünïcödé ✓ 😀', '', 'line\nbreak\ttab'];
  const body = (order: string[], ws = '') => {
    const parts: Record<string, string> = {
      ids: `"ids":${ws}[${tricky.map((_, i) => `"id-${i}"`).join(`,${ws}`)}]`,
      embeddings: `"embeddings":${ws}[${tricky.map((_, i) => `[${i},${ws}${-i / 4},${ws}0.5]`).join(`,${ws}`)}]`,
      documents: `"documents":${JSON.stringify(tricky)}`,
      metadatas: `"metadatas":${JSON.stringify(tricky.map((t, i) => (i === 3 ? null : { source: t, n: i, ok: i % 2 === 0, list: [1, 2], nested: { embeddings: [[9]] } })))}`,
      uris: `"uris":null`,
      include: `"include":["documents","metadatas","embeddings"]`,
    };
    return `${ws}{${ws}${order.map((k) => parts[k]).join(`,${ws}`)}${ws}}${ws}`;
  };

  it.each([
    ['Chroma order', ['ids', 'embeddings', 'documents', 'uris', 'metadatas', 'include'], ''],
    ['embeddings last', ['ids', 'documents', 'metadatas', 'include', 'uris', 'embeddings'], ''],
    ['embeddings first, with whitespace everywhere', ['embeddings', 'metadatas', 'ids', 'documents'], ' \n\t'],
  ])('%s: ids, texts with quotes, brackets, escapes and the word embeddings, and metadata come out as JSON.parse gives them', (_what, order, ws) => {
    const text = body(order, ws);
    const got = parseGetResponse(enc(text), 3);
    const want = reference(text, 3);
    expect(got.ids).toEqual(want.ids);
    expect(got.documents).toEqual(tricky);
    expect(got.metadatas).toEqual(want.metadatas);
    expect(Array.from(got.embeddings!)).toEqual(Array.from(want.embeddings!));
  });

  it('embeddings null or absent: no vectors; an empty page: no rows', () => {
    expect(parseGetResponse(enc('{"ids":["a"],"embeddings":null,"documents":["x"],"metadatas":[null]}'), 2)).toEqual({ ids: ['a'], documents: ['x'], metadatas: [null], embeddings: null });
    expect(parseGetResponse(enc('{"ids":["a"],"documents":["x"]}'), 2).embeddings).toBeNull();
    expect(parseGetResponse(enc('{"ids":[],"embeddings":[],"documents":[],"metadatas":[]}'), 2)).toEqual({ ids: [], documents: [], metadatas: [], embeddings: new Float32Array(0) });
  });

  it('a sparse vector in metadata comes as the chromadb client gives it ({indices, values}); other objects as they are', () => {
    const meta = { sv: { '#type': 'sparse_vector', indices: [1, 5], values: [0.5, 0.25] }, other: { '#type': 'x', indices: [1] }, s: 'a' };
    const got = parseGetResponse(enc(JSON.stringify({ ids: ['a'], metadatas: [meta] })), 0);
    expect(got.metadatas).toEqual([{ sv: { indices: [1, 5], values: [0.5, 0.25] }, other: { '#type': 'x', indices: [1] }, s: 'a' }]);
  });

  it('a vector of the wrong length names its record; more or fewer vectors than ids, no ids, a bad id or broken JSON is a PageFormatError', () => {
    expect(() => parseGetResponse(enc('{"ids":["a","b"],"embeddings":[[1,2],[3]]}'), 2)).toThrow('record b has a 1-d vector, expected 2');
    expect(() => parseGetResponse(enc('{"ids":["a","b"],"embeddings":[[1,2],[3,4,5]]}'), 2)).toThrow('record b has a 3-d vector, expected 2');
    expect(() => parseGetResponse(enc('{"ids":["a","b"],"embeddings":[[1,2]]}'), 2)).toThrow('1 vectors for 2 ids');
    for (const bad of ['{"embeddings":[[1]]}', '{"ids":[1],"embeddings":[[1]]}', '{"ids":["a"],"embeddings":[[1]],"documents":[}', '{"ids":["a"],"embeddings":[[1]]', '[1]', '', '{"ids":["a"],"embeddings":[[1]],"documents":"unterminated}']) {
      expect(() => parseGetResponse(enc(bad), 1), bad).toThrow(PageFormatError);
    }
  });

  it('a body inside a larger buffer is read from its own bytes only', () => {
    const text = '{"ids":["a"],"embeddings":[[1.5,2]],"documents":["d"],"metadatas":[{"k":1}]}';
    const big = Buffer.concat([Buffer.from('garbage['), Buffer.from(text), Buffer.from(']more')]);
    const view = new Uint8Array(big.buffer, big.byteOffset + 8, Buffer.byteLength(text));
    expect(parseGetResponse(view, 2)).toEqual({ ids: ['a'], documents: ['d'], metadatas: [{ k: 1 }], embeddings: new Float32Array([1.5, 2]) });
  });
});
