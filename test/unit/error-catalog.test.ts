import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/errors.js';
import { ROOT } from '../helpers/harness.js';

/** Every code in the catalog is raised somewhere (or documented as reserved) and documented with its status. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|cjs|js)$/.test(e.name) ? [join(dir, e.name)] : []));
}

describe('error catalog', () => {
  const code = Object.keys(ErrorCodes) as Array<keyof typeof ErrorCodes>;
  const src = sources(join(ROOT, 'src')).filter((f) => !f.endsWith('errors.ts')).map((f) => readFileSync(f, 'utf8')).join('\n');
  const ops = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
  const section = ops.slice(ops.indexOf('## Error codes'));
  const rows = new Map([...section.matchAll(/^\| `(RAG_[A-Z_]+)` \| (\d{3}) \| (.+?) \|$/gm)].map((m) => [m[1]!, { status: Number(m[2]), meaning: m[3]! }]));

  it.each(code)('%s is raised somewhere or documented as reserved', (c) => {
    const raised = src.includes(`'${c}'`);
    expect(raised || /reserved/i.test(rows.get(c)?.meaning ?? '')).toBe(true);
  });

  it.each(code)('%s is in docs/operations.md with its status', (c) => {
    expect(rows.get(c)?.status).toBe(ErrorCodes[c]);
  });

  it('documents no code the catalog does not have', () => {
    expect([...rows.keys()].filter((c) => !(c in ErrorCodes))).toEqual([]);
  });
});
