import { describe, expect, it } from 'vitest';
import { SECRET_NAMES } from '../helpers/secret-names.js';
import { auditBody, isSecretName, REDACTED, redactText, redactValue } from '../../src/observability/redact.js';

const NOT_SECRETS = ['question', 'max_tokens', 'max_completion_tokens', 'prompt_tokens', 'model', 'k', 'filter', 'messages', 'author'];

describe('secret names', () => {
  it.each(SECRET_NAMES)('%s is a secret name', (name) => expect(isSecretName(name)).toBe(true));
  it.each(NOT_SECRETS)('%s is not', (name) => expect(isSecretName(name)).toBe(false));
});

describe('redactValue', () => {
  it('redacts every secret name at any depth, in objects and arrays, keeps the rest', () => {
    const deep = SECRET_NAMES.reduce<Record<string, unknown>>((acc, name) => ({ [name]: `s3cr3t-${name}`, nested: acc }), {});
    const body = { question: 'lens?', max_tokens: 5, messages: [{ role: 'user', content: 'hi', meta: [{ headers: deep }] }] };
    const out = JSON.stringify(redactValue(body));
    for (const name of SECRET_NAMES) expect(out).not.toContain(`s3cr3t-${name}`);
    expect(out.match(new RegExp(`"${REDACTED.replace(/[[\]]/g, '\\$&')}"`, 'g'))!.length).toBe(SECRET_NAMES.length);
    expect(out).toContain('"question":"lens?"');
    expect(out).toContain('"max_tokens":5');
  });

  it('takes credential-shaped values out of innocent fields', () => {
    const out = JSON.stringify(redactValue({ question: 'why does sk-abcdefghijklmnop1234 fail with Bearer abc.def.ghi', note: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig' }));
    expect(out).not.toContain('sk-abcdefghijklmnop1234');
    expect(out).not.toContain('abc.def.ghi');
    expect(out).not.toContain('eyJhbGciOiJIUzI1NiJ9');
    expect(out).toContain('why does');
  });

  it('survives a deep value without recursion', () => {
    let v: unknown = { password: 'x' };
    for (let i = 0; i < 100_000; i++) v = [v];
    expect(() => redactValue(v)).not.toThrow();
  });
});

describe('bodies that did not parse', () => {
  it.each(SECRET_NAMES)('redacts "%s" in broken JSON, form and header-like text', (name) => {
    const broken = `{"question": "x", "${name}": "s3cr3t-value", "k": `;
    expect(redactText(broken)).not.toContain('s3cr3t-value');
    expect(redactText(`question=x&${name}=s3cr3t-value&k=1`)).not.toContain('s3cr3t-value');
    expect(redactText(`${name}: s3cr3t-value\n`)).not.toContain('s3cr3t-value');
  });

  it('redacts an unterminated secret string at the end of a cut body, and bearer headers in text', () => {
    expect(redactText('{"q":1,"api_key":"sk-live-abc')).not.toContain('sk-live-abc');
    expect(redactText('Authorization: Bearer abcdefghijkl')).not.toContain('abcdefghijkl');
  });
});

describe('auditBody', () => {
  it('parsed and short: the redacted object', () => {
    const parsed = { question: 'q', api_key: 'k-123' };
    expect(auditBody(parsed, Buffer.from(JSON.stringify(parsed)), 1000)).toEqual({ body: { question: 'q', api_key: REDACTED } });
  });

  it('parsed and longer than the cap: redacted before it is cut, so no secret survives the cut', () => {
    const parsed = { pad: 'p'.repeat(50), password: 'hunter2-hunter2', question: 'q'.repeat(200) };
    const raw = Buffer.from(JSON.stringify(parsed));
    for (const cap of [10, 60, 66, 70, 80, 100]) {
      const out = auditBody(parsed, raw, cap);
      expect(out.truncated).toBe(true);
      expect(Buffer.byteLength(String(out.body))).toBeLessThanOrEqual(cap);
      expect(String(out.body)).not.toMatch(/hunter/);
    }
  });

  it('unparsed and longer than the cap: redacted, cut, and redacted again', () => {
    const raw = Buffer.from(`{"question": "q", "client_secret": "abcdefgh-secret-value", ${'"x": 1, '.repeat(100)}`);
    for (const cap of [20, 40, 50, 55, 60, 200]) {
      const out = auditBody(undefined, raw, cap);
      expect(out.truncated).toBe(true);
      expect(String(out.body)).not.toMatch(/abcdefgh|secret-value/);
    }
  });

  it('no body: nothing', () => {
    expect(auditBody(undefined, undefined, 100)).toEqual({});
  });
});
