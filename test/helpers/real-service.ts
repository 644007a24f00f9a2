import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { copyModelInto, FIXTURES, publishDocs, ROOT } from './harness.js';

export interface RealService {
  child: ChildProcess;
  url: string;
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The real service process (`node dist/src/main.js`) on a free port, optionally as another user
 * (uid/gid, e.g. 65534 = nobody: the tests run as root, which can read everything). Resolves
 * once it logs "listening" (or rejects with its last log lines).
 */
export async function startRealService(env: Record<string, string>, options: { uid?: number; gid?: number; timeoutMs?: number } = {}): Promise<RealService> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], {
    // Audit off unless a test asks: parallel services must not share the default audit folder (one instance each).
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', AUDIT_LOG_DIR: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid ?? options.uid } : {}),
  });
  const logs: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`service not listening in time:\n${logs.slice(-15).join('')}`));
    }, options.timeoutMs ?? 60_000);
    const onData = (b: Buffer) => {
      const text = b.toString();
      logs.push(text);
      const m = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => logs.push(b.toString()));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`service exited (${code ?? signal}) before listening:\n${logs.slice(-15).join('')}`));
    });
  });
  return { child, url, logs, exited };
}

/** Pids of the processes whose command line passes keep (from /proc, like an operator would with pgrep). */
async function pidsWhere(keep: (cmd: string, pid: number) => boolean): Promise<number[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (keep(cmd, Number(name))) pids.push(Number(name));
  }
  return pids;
}

/** Pids of Chroma launchers serving a folder below dir. */
export function chromaPidsUnder(dir: string): Promise<number[]> {
  return pidsWhere((cmd) => cmd.includes('chroma-launcher.cjs') && cmd.includes(`${dir}/`));
}

/** Running (a zombie waiting for the container's init to reap it counts as gone: it runs nothing). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The parent pid of a process (from /proc, not Node's cached process.ppid). */
export function ppidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** Pids of the live spawner hosts (src/store/spawner-host.cjs) whose parent is pid. */
export function spawnerHostsOf(pid: number): Promise<number[]> {
  return pidsWhere((cmd, p) => cmd.includes('spawner-host.cjs') && alive(p) && ppidOf(p) === pid);
}

/** Pids of the live warm standby Chroma launchers (`chroma-launcher.cjs --standby`) whose parent is pid (a spawner host). */
export function standbysOf(pid: number): Promise<number[]> {
  return pidsWhere((cmd, p) => cmd.includes('chroma-launcher.cjs\0--standby') && alive(p) && ppidOf(p) === pid);
}

/**
 * The real service as user nobody over a store it cannot write (the sample docs-a version, owned
 * by root, 0755): what a `:ro` compose mount gives. RUNTIME_DIR is nobody's.
 */
export async function startOnReadOnlyStore(dir: string, env: Record<string, string> = {}): Promise<RealService> {
  const { chmod, chown, mkdir } = await import('node:fs/promises');
  await copyModelInto(join(dir, 'models'));
  await publishDocs(join(dir, 'vectorstore'), join(FIXTURES, 'docs-a'));
  await chmod(dir, 0o755);
  await mkdir(join(dir, 'runtime'));
  await chown(join(dir, 'runtime'), 65534, 65534);
  return startRealService(
    { MODELS_DIR: join(dir, 'models'), VECTORSTORE_DIR: join(dir, 'vectorstore'), RUNTIME_DIR: join(dir, 'runtime'), WATCH: 'false', ...env },
    { uid: 65534, gid: 65534 },
  );
}

/** Stop a real service (SIGTERM, wait), kill any Chroma child left under dir, and remove dir even where the service user made it read-only. */
export async function stopRealServiceAndClean(real: RealService | undefined, tmp: { dir: string; cleanup: () => Promise<void> }): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  if (real && real.child.exitCode === null && real.child.signalCode === null) {
    real.child.kill('SIGTERM');
    await real.exited;
  }
  for (const pid of await chromaPidsUnder(tmp.dir)) process.kill(pid, 'SIGKILL');
  execFileSync('chmod', ['-R', 'u+rwX', tmp.dir]);
  await tmp.cleanup();
}
