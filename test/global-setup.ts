import { execFileSync } from 'node:child_process';

/** After the whole run: no Chroma server started by the tests may still be alive. */
export default function setup(): () => void {
  return () => {
    let out = '';
    try {
      out = execFileSync('pgrep', ['-af', 'chroma-launcher.cjs'], { encoding: 'utf8' });
    } catch {
      out = ''; // pgrep exits 1 when nothing matches
    }
    const mine = out.split('\n').filter((l) => l.includes(process.cwd()));
    if (mine.length) {
      throw new Error(`Chroma processes outlived the test run:\n${mine.join('\n')}`);
    }
  };
}
