// `npm run setup`: everything `npm start` needs, idempotent. Steps are skipped when done.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const modelsDir = resolve(root, process.env.MODELS_DIR ?? 'models');
const storeDir = resolve(root, process.env.VECTORSTORE_DIR ?? 'vectorstore');
const modelName = process.env.MODEL_NAME || 'glove-sif-100d';

function step(name, args) {
  const t0 = Date.now();
  const r = spawnSync(args[0], args.slice(1), { cwd: root, stdio: 'inherit', env: process.env });
  if (r.status !== 0) {
    console.error(`setup: ${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
  console.log(`setup: ${name} done in ${Date.now() - t0} ms`);
}

step('compile', [process.execPath, join(root, 'scripts', 'build-if-stale.mjs'), '--always', '--quiet']);

if (!process.env.CHROMA_URL) {
  step('chroma runtime', [
    process.execPath,
    '--input-type=module',
    '-e',
    `import { resolveChromaRuntime } from ${JSON.stringify(join(root, 'dist/src/store/chroma-runtime.js'))};
     const r = await resolveChromaRuntime();
     console.log('setup: chroma server runs ' + (r.privateGlibcDir ? 'with the private glibc in ' + r.privateGlibcDir : 'on the system glibc'));`,
  ]);
}

if (!existsSync(join(modelsDir, modelName, 'config.json'))) {
  step('embedding model', [process.execPath, join(root, 'dist/tools/static-model/build-model-cli.js'), '--out', join(modelsDir, modelName)]);
} else console.log(`setup: model ${modelName} present`);

const hasStore =
  existsSync(join(storeDir, 'CURRENT')) ||
  existsSync(join(storeDir, 'chroma.sqlite3')) ||
  (existsSync(storeDir) && readdirSync(storeDir).some((n) => existsSync(join(storeDir, n, 'manifest.json'))));
if (!hasStore) {
  step('sample store', [process.execPath, join(root, 'dist/src/ingest/cli.js'), join(root, 'corpus/sample'), '--out', storeDir, '--models-dir', modelsDir, '--model', modelName, '--quiet']);
} else console.log(`setup: a store is present in ${storeDir}`);
