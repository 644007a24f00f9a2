import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSpec, configTable } from '../../src/config.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** The Markdown table that follows the README's "## Configuration" heading. */
function readmeConfigTable(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## Configuration\s*$/m)[1];
  if (!section) throw new Error('README.md has no "## Configuration" section');
  const lines = section.split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sourceFiles(p, out);
    else if (/\.(ts|cjs)$/.test(e.name)) out.push(p);
  }
  return out;
}

describe('no drift between the config schema, the README and the code', () => {
  it("README's configuration table is configTable() (run `npm run config:table` and paste it)", () => {
    expect(readmeConfigTable()).toBe(configTable());
  });

  it('every knob in the schema is read by the code outside src/config.ts', () => {
    const code = sourceFiles(join(ROOT, 'src'))
      .filter((f) => relative(ROOT, f) !== join('src', 'config.ts'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    // A read from a Config: config.x / cfg.x (this.config.x, deps.config.x), or a key of Pick<Config, ...>.
    const picked = [...code.matchAll(/Pick<Config,([^>]*)>/g)].flatMap((m) => [...m[1]!.matchAll(/'(\w+)'/g)].map((k) => k[1]!));
    const unread = Object.keys(configSpec).filter((key) => !picked.includes(key) && !new RegExp(`\\b(config|cfg)\\??\\.${key}\\b`).test(code));
    expect(unread).toEqual([]);
  });

  it('the ingest CLI reads its configuration through loadConfig, like the service', () => {
    const cli = readFileSync(join(ROOT, 'src', 'ingest', 'cli.ts'), 'utf8');
    expect(cli).toMatch(/loadConfig\(process\.env/);
    expect(cli).not.toMatch(/process\.env\.[A-Z_]+/);
  });
});
