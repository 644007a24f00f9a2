import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Config } from '../../config.js';
import { RagError } from '../../errors.js';
import type { Metrics } from '../../observability/metrics.js';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * True when `token` equals one of `keys`, in time that depends on neither the token nor which key
 * matched: every key is compared (no early exit), as equal-length sha256 digests.
 */
export function matchesAny(token: string, keys: readonly Buffer[]): boolean {
  const d = digest(token);
  let hit = false;
  for (const k of keys) hit = timingSafeEqual(d, k) || hit;
  return hit;
}

/** The bearer token of a request, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header || header.length > 4096) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m?.[1];
}

export type AuthDecision = 'allow' | 'missing' | 'invalid' | 'forbidden' | 'disabled';

/**
 * Who may call what (a pure function, unit-tested as a matrix):
 * - user routes (/v1): open when API_KEYS is empty; otherwise a user key or the admin key.
 * - admin routes (/admin): with ADMIN_API_KEY set, only that key (a user key gets 403); without it,
 *   open when API_KEYS is empty too, else closed (403).
 */
export function decide(role: 'user' | 'admin', token: string | undefined, keys: { user: readonly Buffer[]; admin: Buffer | null }): AuthDecision {
  if (role === 'user') {
    if (keys.user.length === 0) return 'allow';
    if (token === undefined) return 'missing';
    const ok = matchesAny(token, keys.admin ? [...keys.user, keys.admin] : keys.user);
    return ok ? 'allow' : 'invalid';
  }
  if (!keys.admin) return keys.user.length === 0 ? 'allow' : 'disabled';
  if (token === undefined) return 'missing';
  if (matchesAny(token, [keys.admin])) return 'allow';
  return matchesAny(token, keys.user) ? 'forbidden' : 'invalid';
}

/**
 * Key checks as middleware, one per role. Mount each on the router it protects (the /v1 router,
 * the /admin router): every route reached through that router is checked, whatever the spelling
 * of the path that led there. Nothing here looks at the path.
 */
export function requireKey(role: 'user' | 'admin', config: Config, metrics: Metrics): RequestHandler {
  const keys = { user: config.apiKeys.map(digest), admin: config.adminApiKey ? digest(config.adminApiKey) : null };
  return (req, _res, next) => {
    const token = bearerToken(req.headers.authorization);
    const decision = decide(role, token, keys);
    if (decision === 'allow') return next();
    const admin = role === 'admin';
    if (decision === 'forbidden' || decision === 'disabled') {
      metrics.httpRejected.inc({ reason: 'forbidden' });
      return next(new RagError('RAG_HTTP_FORBIDDEN', decision === 'disabled' ? 'admin routes are disabled: set ADMIN_API_KEY' : 'this API key may not use admin routes'));
    }
    metrics.httpRejected.inc({ reason: 'unauthorized' });
    const message = decision === 'missing' ? `missing Authorization: Bearer <${admin ? 'admin key' : 'key'}>` : admin ? 'the admin key is not valid' : 'the API key is not valid';
    return next(new RagError('RAG_HTTP_UNAUTHORIZED', message));
  };
}
