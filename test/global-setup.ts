import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

/**
 * Before the run: the real model the tests load must exist (the set-up generates it; build it
 * here if a developer deleted it). After the run: no Chroma server started by the tests may live.
 */
/**
 * System tools the suites drive for real, installed here (set-up, not inside a test) when missing:
 * rsync for the reload contract's `rsync -a --delete` row. Needs root and Debian's archive (CI has both).
 */
function ensureSystemTools(): void {
  for (const [tool, pkg] of [['rsync', 'rsync']] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      execFileSync('sh', ['-c', `(apt-get install -y -qq ${pkg} || (apt-get update -qq && apt-get install -y -qq ${pkg})) >/dev/null`], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    }
  }
}

export default function setup(): () => void {
  ensureSystemTools();
  if (!existsSync(join(ROOT, 'models', 'glove-sif-100d', 'config.json'))) {
    execFileSync(process.execPath, [join(ROOT, 'dist/src/embeddings/build-model-cli.js'), '--out', join(ROOT, 'models', 'glove-sif-100d')], {
      stdio: 'inherit',
    });
  }
  return () => {
    let out = '';
    try {
      out = execFileSync('pgrep', ['-af', 'chroma-launcher.cjs'], { encoding: 'utf8' });
    } catch {
      out = ''; // pgrep exits 1 when nothing matches
    }
    // Only servers on test folders (temp dirs named rag-*): a developer's `npm start` may run beside,
    // and other checkouts' test runs may share the machine: count this checkout's launcher only.
    const launcher = join(ROOT, 'src', 'store', 'chroma-launcher.cjs');
    const mine = out.split('\n').filter((l) => l.includes(launcher) && l.includes(`--path ${join(tmpdir(), 'rag-t-')}`));
    if (mine.length) {
      throw new Error(`Chroma processes outlived the test run:\n${mine.join('\n')}`);
    }
  };
}
