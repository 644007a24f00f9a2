import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { resolveChromaRuntime } from '../../src/store/chroma-runtime.js';
import { ChromaServer, prepareChromaStandby } from '../../src/store/chroma-server.js';
import { spawnOwned } from '../../src/store/spawner.js';
import { niceFromStat } from '../../src/store/thread-nice.js';
import { alive, spawnerHostsOf, standbysOf } from '../helpers/real-service.js';
import { startTestService, waitFor } from '../helpers/harness.js';

/** The spawner host (src/store/spawner.ts) with real processes: what a child does before its owner listens is not lost. */
describe('spawnOwned', () => {
  it('a child that prints and exits at once: its output and its exit reach listeners added after the spawn settles', async () => {
    for (let i = 0; i < 5; i++) {
      const child = await spawnOwned('/bin/sh', ['-c', 'echo hello-$0; exit 3', `run${i}`], { env: process.env });
      // Give the host's 'data' and 'exit' messages time to arrive before anyone listens.
      await new Promise((r) => setTimeout(r, 100));
      let out = '';
      child.on('data', (t) => (out += t));
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
      expect(out.trim()).toBe(`hello-run${i}`);
      expect(code).toBe(3);
      expect(signal).toBeNull();
      expect(child.kill('SIGKILL')).toBe(false);
    }
  });

  it('a command that cannot start is a RAG_CHROMA_START_FAILED error, not a hang', async () => {
    await expect(spawnOwned('/nonexistent/binary', [], { env: process.env })).rejects.toMatchObject({ code: 'RAG_CHROMA_START_FAILED' });
  });

  it('kill() by pid ends a running child and its exit is reported with the signal', async () => {
    const child = await spawnOwned('/bin/sleep', ['30'], { env: process.env, nice: 5 });
    // Its niceness (field 19 of /proc/<pid>/stat) is the one asked for: build work yields CPU to requests.
    expect(niceFromStat(readFileSync(`/proc/${child.pid}/stat`, 'utf8'))).toBe(5);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
    expect(child.kill('SIGTERM')).toBe(true);
    expect(await exited).toBe('SIGTERM');
  });
});

/**
 * The warm standby (spawner-host.cjs, chroma-launcher.cjs --standby, prepareChromaStandby): a Chroma
 * child with its binding loaded, waiting for its arguments, adopted by the next matching start.
 */
describe('warm standby Chroma child', () => {
  const logger = createSilentLogger();
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'rag-t-standby-'));
  });
  afterAll(async () => {
    await prepareChromaStandby({ ttlMs: 0 }); // drop any left
    await rm(tmp, { recursive: true, force: true });
  });

  async function host(): Promise<number> {
    await waitFor(async () => (await spawnerHostsOf(process.pid)).length === 1, 5_000, 'the spawner host');
    return (await spawnerHostsOf(process.pid))[0]!;
  }
  async function oneStandby(): Promise<number> {
    const h = await host();
    await waitFor(async () => (await standbysOf(h)).length === 1, 10_000, 'one standby');
    return (await standbysOf(h))[0]!;
  }
  const niceOf = (pid: number) => niceFromStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));

  it('is adopted by the next start with the same niceness: same process, niced, serving the folder it was given; asked again it is not duplicated', async () => {
    await prepareChromaStandby({ nice: 19, ttlMs: 30_000 });
    const standby = await oneStandby();
    await prepareChromaStandby({ nice: 19, ttlMs: 30_000 }); // extends it: still one, the same
    await new Promise((r) => setTimeout(r, 300));
    expect(await standbysOf(await host())).toEqual([standby]);
    const srv = new ChromaServer({ dataDir: join(tmp, 'a'), logger, nice: 19, restart: false });
    await srv.start();
    try {
      expect(srv.pid).toBe(standby);
      expect(srv.adoptedStandby).toBe(true);
      expect(niceOf(standby)).toBe(19);
      expect((await fetch(`${srv.url}/api/v2/heartbeat`)).ok).toBe(true);
      // It serves the folder given at adoption (Chroma created its database there).
      expect(existsSync(join(tmp, 'a', 'chroma.sqlite3'))).toBe(true);
      // Taken, not copied: no other standby appeared (the adopted process keeps its --standby command line).
      expect(await standbysOf(await host())).toEqual([standby]);
    } finally {
      await srv.stop();
    }
    expect(alive(standby)).toBe(false);
  });

  it('a start of another kind (niceness) does not adopt it; it ends after its time; ttl 0 drops it at once', async () => {
    await prepareChromaStandby({ nice: 0, ttlMs: 1_500 });
    const standby = await oneStandby();
    const srv = new ChromaServer({ dataDir: join(tmp, 'b'), logger, nice: 19, restart: false });
    await srv.start();
    try {
      expect(srv.adoptedStandby).toBe(false);
      expect(srv.pid).not.toBe(standby);
    } finally {
      await srv.stop();
    }
    expect(alive(standby)).toBe(true);
    await waitFor(() => !alive(standby), 5_000, 'the unused standby to end after its time');
    await prepareChromaStandby({ nice: 0, ttlMs: 60_000 });
    const next = await oneStandby();
    await prepareChromaStandby({ nice: 0, ttlMs: 0 });
    await waitFor(() => !alive(next), 5_000, 'ttl 0 to drop the standby');
  });

  it('a service warms one as soon as its store folder is being written, before the reload that follows', async () => {
    const svc = await startTestService({ env: { WATCH: 'true', WATCH_STABILITY_MS: '3000' } });
    try {
      const h = await host();
      // Its start asks for one once its loader child has exited (after the generation serves): wait for
      // it, then drop it.
      await waitFor(async () => (await standbysOf(h)).length === 1, 10_000, 'the standby its start left');
      await prepareChromaStandby({ nice: 19, ttlMs: 0 });
      await waitFor(async () => (await standbysOf(h)).length === 0, 5_000, 'no standby');
      await writeFile(join(svc.dirs.store, 'notes.txt'), 'a file being written'); // settles only after 3 s
      await waitFor(async () => (await standbysOf(h)).length === 1, 2_500, 'a standby before the write settles');
    } finally {
      await svc.stop();
    }
  });

  it('a standby given a malformed argument line exits 70 and starts no server', async () => {
    const runtime = await resolveChromaRuntime();
    for (const line of ['not json\n', '{"run":1}\n', '[]\n', '["run", 3]\n']) {
      const child = spawn(runtime.command, [...runtime.prefixArgs, runtime.launcherPath, '--standby'], {
        env: { ...process.env, CHROMA_BINDING_PATH: runtime.bindingPath },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (b) => (err += b));
      child.stdin.write(line);
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      expect(code).toBe(70);
      expect(err).toMatch(/standby got/);
    }
  });
});
