import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { RagError } from '../errors.js';

const execFileAsync = promisify(execFile);
const require = createRequire(import.meta.url);

/** glibc the native Chroma binding (chromadb-js-bindings 1.3.x) was linked against. */
const REQUIRED_GLIBC: [number, number] = [2, 39];
const LOADER_REL = 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2';
const LIB_REL = 'usr/lib/x86_64-linux-gnu';

/** How to start `node chroma-launcher.cjs` so that the binding loads on this machine. */
export interface ChromaRuntime {
  /** Executable to spawn (node itself, or a private glibc loader that then runs node). */
  command: string;
  /** Arguments before the launcher script path. */
  prefixArgs: string[];
  bindingPath: string;
  launcherPath: string;
  /** null when the system glibc is new enough. */
  privateGlibcDir: string | null;
}

/**
 * The glibc this process runs on, from its diagnostic report's header. The report is synchronous
 * and lists every open handle: 33 ms of the event loop in a service with 16 connections open
 * (session 18's CPU profile), so its network part is left out, and the service resolves the
 * runtime once at start (service.ts), not during a swap.
 */
export function systemGlibcVersion(): [number, number] | null {
  const report = process.report as (typeof process.report & { excludeNetwork?: boolean }) | undefined;
  const before = report?.excludeNetwork;
  let header: { glibcVersionRuntime?: string } | undefined;
  try {
    if (report && before !== undefined) report.excludeNetwork = true;
    header = (report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  } finally {
    if (report && before !== undefined) report.excludeNetwork = before;
  }
  const v = header?.glibcVersionRuntime;
  if (!v) return null;
  const [maj, min] = v.split('.').map(Number);
  return maj === undefined || min === undefined ? null : [maj, min];
}

function glibcNewEnough(v: [number, number] | null): boolean {
  if (!v) return false;
  return v[0] > REQUIRED_GLIBC[0] || (v[0] === REQUIRED_GLIBC[0] && v[1] >= REQUIRED_GLIBC[1]);
}

export function resolveBindingPath(): string {
  const pkg = `chromadb-js-bindings-${process.platform}-${process.arch}${process.platform === 'linux' ? '-gnu' : ''}`;
  try {
    return require.resolve(pkg);
  } catch (cause) {
    throw new RagError(
      'RAG_CHROMA_START_FAILED',
      `the native Chroma server package ${pkg} is not installed (it is an optional dependency of chromadb); ` +
        'reinstall with `npm install`, or point CHROMA_URL at a running Chroma server',
      { cause },
    );
  }
}

export function launcherPath(): string {
  return join(dirname(new URL(import.meta.url).pathname), 'chroma-launcher.cjs');
}

/** The Debian mirror this machine's apt already uses (so no host is hard-coded here). */
async function debianMirror(): Promise<string> {
  const candidates = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    const text = await readFile(file, 'utf8');
    const deb822 = /^URIs:\s*(\S+)/m.exec(text);
    if (deb822?.[1] && !deb822[1].includes('security')) return deb822[1];
    const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(text);
    if (oneLine?.[1]) return oneLine[1];
  }
  throw new RagError('RAG_CHROMA_GLIBC_MISSING', 'no Debian apt sources found to fetch a newer glibc from');
}

/**
 * Download trixie's libc6 into a private folder with apt-get (no root, nothing installed
 * system-wide), so the binding can run on Debian 12's glibc 2.36 through a private loader.
 */
export async function installPrivateGlibc(targetDir: string): Promise<void> {
  if (existsSync(join(targetDir, LOADER_REL))) return;
  const fail = (message: string, cause?: unknown): never => {
    throw new RagError(
      'RAG_CHROMA_GLIBC_MISSING',
      `the Chroma server needs glibc >= ${REQUIRED_GLIBC.join('.')}; ${message}. ` +
        'Run the service in the Docker image (Debian trixie), or set CHROMA_URL to an existing Chroma server',
      { cause },
    );
  };
  try {
    await execFileAsync('apt-get', ['--version']);
  } catch (cause) {
    fail('this machine has no apt-get to fetch it', cause);
  }
  await mkdir(dirname(targetDir), { recursive: true });
  const work = await mkdtemp(`${targetDir}.tmp-`);
  try {
    const mirror = await debianMirror();
    for (const d of ['etc', 'state/lists/partial', 'cache/archives/partial', 'deb']) await mkdir(join(work, d), { recursive: true });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      join(work, 'etc/sources.list'),
      `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} trixie main\n`,
    );
    await writeFile(join(work, 'state/status'), '');
    const aptOpts = [
      '-o', `Dir::Etc::sourcelist=${join(work, 'etc/sources.list')}`,
      '-o', 'Dir::Etc::sourceparts=/nonexistent',
      '-o', `Dir::State=${join(work, 'state')}`,
      '-o', `Dir::State::status=${join(work, 'state/status')}`,
      '-o', `Dir::Cache=${join(work, 'cache')}`,
      '-o', 'Debug::NoLocking=1',
      '-o', 'APT::Sandbox::User=root',
    ];
    await execFileAsync('apt-get', [...aptOpts, '-qq', 'update'], { timeout: 120_000 });
    await execFileAsync('apt-get', [...aptOpts, '-qq', 'download', 'libc6'], { cwd: join(work, 'deb'), timeout: 120_000 });
    const debs = (await readdir(join(work, 'deb'))).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1 || !debs[0]) fail(`apt-get download libc6 gave ${debs.length} packages`);
    await execFileAsync('dpkg-deb', ['-x', join(work, 'deb', debs[0]!), join(work, 'root')]);
    if (!existsSync(join(work, 'root', LOADER_REL))) fail(`the downloaded libc6 has no ${LOADER_REL}`);
    await rm(targetDir, { recursive: true, force: true });
    await rename(join(work, 'root'), targetDir);
  } catch (err) {
    if (err instanceof RagError) throw err;
    fail('fetching trixie libc6 with apt-get failed', err);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Where the private glibc lives: CHROMA_GLIBC_DIR, else `<project>/.cache/glibc-trixie`. */
export function defaultGlibcDir(): string {
  if (process.env.CHROMA_GLIBC_DIR) return process.env.CHROMA_GLIBC_DIR;
  // dist/src/store or src/store -> project root
  let dir = dirname(new URL(import.meta.url).pathname);
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, '.cache', 'glibc-trixie');
}

let cached: Promise<ChromaRuntime> | undefined;

/** Resolve (once per process) how to run the embedded Chroma server here. */
export function resolveChromaRuntime(glibcDir = defaultGlibcDir()): Promise<ChromaRuntime> {
  cached ??= (async () => {
    const bindingPath = resolveBindingPath();
    const launcher = launcherPath();
    if (!existsSync(launcher)) {
      throw new RagError('RAG_CHROMA_START_FAILED', `the Chroma launcher script is missing: ${launcher}`);
    }
    if (process.platform !== 'linux' || glibcNewEnough(systemGlibcVersion())) {
      return { command: process.execPath, prefixArgs: [], bindingPath, launcherPath: launcher, privateGlibcDir: null };
    }
    await installPrivateGlibc(glibcDir);
    const lib = join(glibcDir, LIB_REL);
    return {
      command: join(glibcDir, LOADER_REL),
      prefixArgs: ['--library-path', `${lib}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu`, process.execPath],
      bindingPath,
      launcherPath: launcher,
      privateGlibcDir: glibcDir,
    };
  })();
  cached.catch(() => {
    cached = undefined;
  });
  return cached;
}
