/**
 * Secret redaction for the audit log. Field names are matched by pattern, case-insensitively, at
 * any depth: whatever a client calls its credentials (api_key, apiKey, x-api-key, access_token,
 * refreshToken, id_token, client_secret, password, passwd, passphrase, authorization, cookie,
 * set-cookie, session, credentials, private_key, bearer, jwt, signature) is replaced by a marker.
 * Bodies that did not parse, or are longer than the audit cap, are redacted as text.
 */

export const REDACTED = '[redacted]';

/** Names that carry secrets. Matched anywhere in the name: `myAccessToken`, `X-Api-Key`, `db_password`. */
export const SECRET_NAME =
  /pass(?:word|wd|phrase)?|secret|token|api[-_ ]?key|access[-_ ]?key|private[-_ ]?key|auth(?:orization|[-_]?key)?|cookie|session|credential|bearer|jwt|signature|otp/i;

/** Names that match the pattern but are counts or settings, not secrets (OpenAI request fields). */
const NOT_SECRET = /^(?:max_(?:completion_|new_)?tokens|(?:prompt|completion|total|reasoning|cached)_tokens|max_output_tokens|token_count|tokens?_used|author)$/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name) && !NOT_SECRET.test(name);
}

/** Redact a parsed JSON value (iterative: no recursion depth to exhaust). */
export function redactValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? redactInline(value) : value;
  const root: { v: unknown } = { v: undefined };
  const stack: Array<{ src: unknown; set: (v: unknown) => void }> = [{ src: value, set: (v) => (root.v = v) }];
  while (stack.length) {
    const { src, set } = stack.pop()!;
    if (src === null || typeof src !== 'object') {
      set(typeof src === 'string' ? redactInline(src) : src);
      continue;
    }
    if (Array.isArray(src)) {
      const out: unknown[] = new Array(src.length);
      set(out);
      src.forEach((item, i) => stack.push({ src: item, set: (v) => (out[i] = v) }));
      continue;
    }
    const out: Record<string, unknown> = {};
    set(out);
    for (const [k, item] of Object.entries(src)) {
      if (isSecretName(k)) out[k] = REDACTED;
      else stack.push({ src: item, set: (v) => (out[k] = v) });
    }
  }
  return root.v;
}

// "name": <string | number | literal | unterminated string at the end of a cut body>
const JSON_PAIR = /("((?:[^"\\]|\\.){0,256})"\s*:\s*)("(?:[^"\\]|\\.)*(?:"|$)|-?[\w.+-]+)/g;
// name=value in query strings and form bodies, name: value in header-like text
const KEY_VALUE = /(^|[\s?&;,{(])([A-Za-z0-9_.-]{1,64})(\s*[=:]\s*)("[^"]*"?|'[^']*'?|[^\s&;,})]+)/g;
const BEARER = /\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}/gi;
// Credential-shaped values even under an innocent name: OpenAI/Anthropic/GitHub/Slack/AWS keys, JWTs.
const KEY_SHAPES = /\b(?:sk-[A-Za-z0-9_-]{8,}|ghp_[A-Za-z0-9]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)/g;

/** Credentials pasted into a string value (a question quoting a key): the value shapes only. */
export function redactInline(text: string): string {
  return text.replace(BEARER, (_all, scheme: string) => `${scheme} ${REDACTED}`).replace(KEY_SHAPES, REDACTED);
}

/** Redact secrets found by pattern in text that is not (or no longer) valid JSON. */
export function redactText(text: string): string {
  return text
    .replace(BEARER, (_all, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(JSON_PAIR, (all, head: string, name: string) => (isSecretName(name) ? `${head}"${REDACTED}"` : all))
    .replace(KEY_VALUE, (all, pre: string, name: string, sep: string) => (isSecretName(name) ? `${pre}${name}${sep}${REDACTED}` : all))
    .replace(KEY_SHAPES, REDACTED);
}

/**
 * A request body for the audit line: redacted, then cut to `cap` bytes (and redacted again, in case
 * the cut left a fragment the patterns still recognise). Parsed bodies are redacted as values
 * before they are serialised, so a secret is never split by the cut.
 */
export function auditBody(parsed: unknown, raw: Buffer | undefined, cap: number): { body?: unknown; truncated?: true } {
  if (!raw || raw.length === 0) return {};
  if (parsed !== undefined && typeof parsed === 'object' && parsed !== null) {
    const redacted = redactValue(parsed);
    if (raw.length <= cap) return { body: redacted };
    return { body: redactText(cut(JSON.stringify(redacted), cap)), truncated: true };
  }
  // Did not parse: keep the text (that is the point of auditing it), with secrets taken out.
  const text = raw.toString('utf8');
  const redacted = redactText(text);
  if (Buffer.byteLength(redacted) <= cap) return { body: redacted };
  return { body: redactText(cut(redacted, cap)), truncated: true };
}

/** Cut a string to at most `bytes` UTF-8 bytes without splitting a character. */
function cut(text: string, bytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= bytes) return text;
  let end = bytes;
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString('utf8');
}
