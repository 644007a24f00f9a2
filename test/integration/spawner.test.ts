import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { spawnOwned } from '../../src/store/spawner.js';

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
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])).toBe(5);
    const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, s) => r(s)));
    expect(child.kill('SIGTERM')).toBe(true);
    expect(await exited).toBe('SIGTERM');
  });
});
