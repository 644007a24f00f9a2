// `npm run config:table` prints the configuration table (from src/config.ts, compiled);
// `npm run config:table -- --write` puts it into README.md under "## Configuration"
// (test/unit/no-drift.test.ts fails while the two differ).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const { configTable } = await import(join(root, 'dist', 'src', 'config.js'));
const table = configTable();
if (!process.argv.includes('--write')) {
  console.log(table);
  process.exit(0);
}
const path = join(root, 'README.md');
const lines = readFileSync(path, 'utf8').split('\n');
const heading = lines.findIndex((l) => /^## Configuration\s*$/.test(l));
if (heading === -1) throw new Error('README.md has no "## Configuration" section');
const start = lines.findIndex((l, i) => i > heading && l.startsWith('|'));
let end = start;
while (end < lines.length && lines[end].startsWith('|')) end++;
lines.splice(start, end - start, ...table.split('\n'));
writeFileSync(path, lines.join('\n'));
console.log(`README.md: configuration table updated (${table.split('\n').length - 2} variables)`);
