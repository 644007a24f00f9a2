import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

/**
 * Before the run: the real model the tests load must exist (the set-up generates it; build it
 * here if a developer deleted it). After the run: no Chroma server started by the tests may live.
 */
export default function setup(): () => void {
  if (!existsSync(join(ROOT, 'models', 'glove-sif-100d', 'config.json'))) {
    execFileSync(process.execPath, [join(ROOT, 'dist/tools/static-model/build-model-cli.js'), '--out', join(ROOT, 'models', 'glove-sif-100d')], {
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
