import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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
    // Warm standbys (chroma-launcher.cjs --standby) have no folder: none may be left without its
    // spawner host (an orphan is adopted by init). Their hosts end with the test workers; give them time.
    const orphanStandbys = () => {
      let list = '';
      try {
        list = execFileSync('pgrep', ['-f', `${ROOT}/(dist/)?src/store/chroma-launcher\\.cjs --standby`], { encoding: 'utf8' });
      } catch {
        return [];
      }
      return list.split('\n').filter(Boolean).filter((pid) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          return !readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes('spawner-host.cjs');
        } catch {
          return false; // gone meanwhile
        }
      });
    };
    const until = Date.now() + 5000;
    while (orphanStandbys().length && Date.now() < until) execFileSync('sleep', ['0.2']);
    const orphans = orphanStandbys();
    if (orphans.length) throw new Error(`warm standby Chroma children outlived their spawner host: pids ${orphans.join(', ')}`);
  };
}
