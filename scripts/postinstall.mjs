// Runs after `npm install`: compile, fetch what the Chroma server needs on this machine,
// generate the offline embedding model, and ingest the bundled sample corpus, each step only
// when its output is missing. RAG_SKIP_SETUP=1 skips everything (e.g. `npm ci` in a build stage
// that runs `npm run setup` itself).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
if (process.env.RAG_SKIP_SETUP === '1') {
  console.log('postinstall: RAG_SKIP_SETUP=1, skipping set-up');
  process.exit(0);
}
if (!existsSync(join(root, 'node_modules', '.bin', 'tsc'))) {
  console.log('postinstall: TypeScript is not installed (production install?); run `npm run setup` where dev dependencies exist');
  process.exit(0);
}
const r = spawnSync(process.execPath, [join(root, 'scripts', 'setup.mjs')], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
