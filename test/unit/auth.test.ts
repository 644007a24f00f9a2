import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { bearerToken, decide, matchesAny } from '../../src/http/middleware/auth.js';

const d = (s: string) => createHash('sha256').update(s).digest();
const USER = 'u-key';
const ADMIN = 'a-key';

/** role x configuration x presented key -> decision: the whole auth policy as a table. */
const MATRIX: Array<[role: 'user' | 'admin', config: 'open' | 'user-only' | 'admin-only' | 'both', key: string | undefined, want: string]> = [
  ['user', 'open', undefined, 'allow'],
  ['user', 'open', 'anything', 'allow'],
  ['admin', 'open', undefined, 'allow'],
  ['user', 'user-only', undefined, 'missing'],
  ['user', 'user-only', 'nope', 'invalid'],
  ['user', 'user-only', USER, 'allow'],
  ['admin', 'user-only', USER, 'disabled'],
  ['admin', 'user-only', undefined, 'disabled'],
  ['user', 'admin-only', undefined, 'allow'],
  ['admin', 'admin-only', undefined, 'missing'],
  ['admin', 'admin-only', 'nope', 'invalid'],
  ['admin', 'admin-only', ADMIN, 'allow'],
  ['user', 'both', undefined, 'missing'],
  ['user', 'both', 'nope', 'invalid'],
  ['user', 'both', USER, 'allow'],
  ['user', 'both', ADMIN, 'allow'],
  ['admin', 'both', undefined, 'missing'],
  ['admin', 'both', 'nope', 'invalid'],
  ['admin', 'both', USER, 'forbidden'],
  ['admin', 'both', ADMIN, 'allow'],
  ['admin', 'both', `${ADMIN} `, 'invalid'],
  ['admin', 'both', ADMIN.toUpperCase(), 'invalid'],
];

describe('auth policy', () => {
  it.each(MATRIX)('%s route, %s, key %s -> %s', (role, config, key, want) => {
    const keys = {
      user: config === 'user-only' || config === 'both' ? [d(USER)] : [],
      admin: config === 'admin-only' || config === 'both' ? d(ADMIN) : null,
    };
    expect(decide(role, key, keys)).toBe(want);
  });

  it('compares every key, by digest', () => {
    expect(matchesAny('b', [d('a'), d('b'), d('c')])).toBe(true);
    expect(matchesAny('', [d('a')])).toBe(false);
    expect(matchesAny('a'.repeat(10_000), [d('a')])).toBe(false);
  });

  it('reads only a well-formed Bearer header', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('bearer   abc  ')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken(`Bearer ${'x'.repeat(5000)}`)).toBeUndefined();
  });
});
