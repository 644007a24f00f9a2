import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/harness.js';

const run = promisify(execFile);

/** scripts/build-if-stale.mjs in a tiny project of its own (real tsc through a link to our node_modules). */
// Each step runs a real tsc (seconds each on a loaded 2-core machine): generous timeouts.
describe('npm start builds only when a TypeScript input changed (scripts/build-if-stale.mjs)', { timeout: 240_000 }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const script = () => join(dir, 'scripts', 'build-if-stale.mjs');
  const check = () => run(process.execPath, [script(), '--check']).then(() => 'fresh', () => 'stale');
  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('rag-t-build-'));
    await mkdir(join(dir, 'scripts'));
    await cp(join(ROOT, 'scripts', 'build-if-stale.mjs'), script());
    await cp(join(ROOT, 'scripts', 'start.mjs'), join(dir, 'scripts', 'start.mjs'));
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'main.ts'), 'export const a: number = 1;\n');
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { outDir: 'dist', rootDir: '.', module: 'NodeNext', target: 'ES2022', incremental: true, tsBuildInfoFile: 'dist/.tsbuildinfo', skipLibCheck: true, types: [] }, include: ['src/**/*.ts'] }),
    );
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it('a fresh clone (no dist/) builds; then the tree is fresh and a start compiles nothing', async () => {
    expect(await check()).toBe('stale');
    const first = await run(process.execPath, [script()]);
    expect(first.stderr).toMatch(/compiled in \d+ ms/);
    expect(await check()).toBe('fresh');
    const again = await run(process.execPath, [script()]);
    expect(again.stderr).toBe('');
  });

  it('an edited, added or deleted source makes it stale; building makes it fresh again', async () => {
    const later = new Date(Date.now() + 5_000);
    await utimes(join(dir, 'src', 'main.ts'), later, later);
    expect(await check()).toBe('stale');
    await run(process.execPath, [script()]);
    expect(await check()).toBe('fresh');
    await writeFile(join(dir, 'src', 'extra.ts'), 'export const b = 2;\n');
    expect(await check()).toBe('stale');
    await run(process.execPath, [script()]);
    await rm(join(dir, 'src', 'extra.ts'));
    expect(await check()).toBe('stale');
    await writeFile(join(dir, 'tsconfig.json'), (await import('node:fs')).readFileSync(join(dir, 'tsconfig.json'), 'utf8') + '\n');
    await run(process.execPath, [script()]);
    expect(await check()).toBe('fresh');
  });

  it('a compiled file deleted from dist/ makes it stale; building writes it again', async () => {
    await writeFile(join(dir, 'src', 'kept.ts'), 'export const c = 3;\n');
    await run(process.execPath, [script()]);
    expect(await check()).toBe('fresh');
    await rm(join(dir, 'dist', 'src', 'kept.js'));
    const stale = await run(process.execPath, [script(), '--check']).catch((e: { stderr: string }) => e);
    expect(stale.stderr).toMatch(/dist\/src\/kept\.js is missing/);
    await run(process.execPath, [script()]);
    expect(existsSync(join(dir, 'dist', 'src', 'kept.js'))).toBe(true);
    expect(await check()).toBe('fresh');
    await rm(join(dir, 'src', 'kept.ts'));
    await run(process.execPath, [script()]);
  });

  it('scripts/start.mjs (npm start) builds a stale tree, then runs dist/src/main.js in the same process', async () => {
    // The tiny project has no @types/node: declare what main.ts uses. It prints its argv[1]: the
    // start script when it runs inside start.mjs's process.
    await writeFile(join(dir, 'src', 'main.ts'), 'declare const process: { argv: string[] };\nconsole.log(`main ran under ${process.argv[1]}`);\n');
    const start = () => run(process.execPath, [join(dir, 'scripts', 'start.mjs')]);
    const first = await start();
    expect(first.stderr).toMatch(/compiled in \d+ ms/);
    expect(first.stdout).toBe(`main ran under ${join(dir, 'scripts', 'start.mjs')}\n`);
    const again = await start();
    expect(again.stderr).toBe('');
    expect(again.stdout).toBe(`main ran under ${join(dir, 'scripts', 'start.mjs')}\n`);
  });

  it('a compile error fails the start (no stamp is written, main does not run)', async () => {
    await writeFile(join(dir, 'src', 'main.ts'), 'export const a: number = "nope";\n');
    await expect(run(process.execPath, [script()])).rejects.toMatchObject({ code: 2 });
    expect(await check()).toBe('stale');
    const started = run(process.execPath, [join(dir, 'scripts', 'start.mjs')]);
    await expect(started).rejects.toMatchObject({ code: 2, stdout: expect.not.stringContaining('main ran') });
  });
});
