// Compile only when the TypeScript inputs changed since the last build, so `npm start` on a built
// tree goes straight to node. The stamp in dist/ records every input's path, size and mtime (plus the
// TypeScript version); any difference (an edit, a new or deleted file, a `git checkout`) rebuilds,
// incrementally (tsconfig's tsBuildInfoFile). A missing dist/ (fresh clone) always builds.
//   node scripts/build-if-stale.mjs          build if stale
//   node scripts/build-if-stale.mjs --check  exit 1 if stale, build nothing
//   node scripts/build-if-stale.mjs --always compile now (incrementally) and write the stamp (npm run build)
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const STAMP = join(root, 'dist', '.build-stamp');
// The folders and files tsconfig.json compiles (its "include"), and the config itself.
const INPUT_DIRS = ['src', 'tools', 'bench', 'eval', 'scripts'];
const INPUT_FILES = ['tsconfig.json', 'package-lock.json'];
const COMPILED = /\.(ts|cts|mts|cjs)$/;

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile() && COMPILED.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
}

function inputs() {
  const files = [];
  for (const d of INPUT_DIRS) walk(join(root, d), files);
  for (const f of INPUT_FILES) if (existsSync(join(root, f))) files.push(join(root, f));
  return files.sort();
}

/**
 * The first compiled input whose output is missing from dist/ (tsconfig: outDir dist, rootDir .;
 * .ts -> .js, .cts -> .cjs, .mts -> .mjs, and src's .cjs copied as is), or null. A file deleted from
 * dist/ by hand is otherwise never rebuilt: the stamp records the inputs only, and tsc's incremental
 * information still holds that output current.
 */
function missingOutput(files) {
  for (const f of files) {
    const rel = relative(root, f);
    if (!/\.(ts|cts|mts)$/.test(rel) && !(rel.startsWith(`src${sep}`) && rel.endsWith('.cjs'))) continue;
    const out = join(root, 'dist', rel.replace(/\.ts$/, '.js').replace(/\.cts$/, '.cjs').replace(/\.mts$/, '.mjs'));
    if (!existsSync(out)) return relative(root, out);
  }
  return null;
}

function fingerprint(files) {
  const h = createHash('sha256');
  const tscPkg = join(root, 'node_modules', 'typescript', 'package.json');
  h.update(`typescript ${existsSync(tscPkg) ? JSON.parse(readFileSync(tscPkg, 'utf8')).version : 'none'}\n`);
  for (const f of files) {
    const s = statSync(f);
    h.update(`${relative(root, f)}\0${s.size}\0${s.mtimeMs}\n`);
  }
  return h.digest('hex');
}

/**
 * Build when stale; returns the exit status (0: dist/ is current). scripts/start.mjs calls it in
 * its own process, so `npm start` on a built tree boots one node, not two.
 */
export function buildIfStale({ check = false, always = false, quiet = false } = {}) {
  const files = inputs();
  const want = fingerprint(files);
  const have = existsSync(STAMP) ? readFileSync(STAMP, 'utf8').trim() : '';
  const built = existsSync(join(root, 'dist', 'src', 'main.js'));
  const missing = built ? missingOutput(files) : null;
  if (built && !missing && have === want && !always) return 0;
  if (check) {
    console.error(!built ? 'build-if-stale: not built yet' : missing ? `build-if-stale: ${missing} is missing` : 'build-if-stale: sources changed since the last build');
    return 1;
  }
  // tsc's incremental information would skip an output it believes current: without it, all are written.
  if (missing) rmSync(join(root, 'dist', '.tsbuildinfo'), { force: true });
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) {
    // A production install (no dev dependencies): serve what was built, or say how to build.
    if (built) return 0;
    console.error('build-if-stale: dist/ is missing and TypeScript is not installed; run `npm install` (with dev dependencies)');
    return 1;
  }
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.json')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) return r.status ?? 1;
  writeFileSync(STAMP, `${want}\n`);
  if (!quiet) console.error(`build-if-stale: compiled in ${Date.now() - t0} ms`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === realpathSync(process.argv[1])) {
  process.exit(buildIfStale({ check: process.argv.includes('--check'), always: process.argv.includes('--always'), quiet: process.argv.includes('--quiet') }));
}
