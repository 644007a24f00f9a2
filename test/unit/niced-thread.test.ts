import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isMainThread } from 'node:worker_threads';
import { nicedSpawnerTids, startNicedThread, threadPort, type NicedThread } from '../../src/niced-thread.js';
import { niceFromStat } from '../../src/store/thread-nice.js';

const script = resolve(import.meta.dirname, '../fixtures/threads/niced-echo.mjs');
const module = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/niced-thread.js')).href;
const niceOf = (tid: number | 'thread-self') => niceFromStat(readFileSync(tid === 'thread-self' ? '/proc/thread-self/stat' : `/proc/self/task/${tid}/stat`, 'utf8'));
type Hello = { type: 'hello'; bornNice: number; tid: number; data: unknown };
const next = <T>(t: NicedThread, event: 'message' | 'error' | 'exit') => new Promise<T>((res) => t.once(event as 'message', res));

describe.runIf(process.platform === 'linux')('startNicedThread (threads born at a low priority)', () => {
  it('the thread runs niced from its first instruction, the event loop keeps its priority; messages and transfers go both ways', async () => {
    const mainNice = niceOf('thread-self');
    const t = startNicedThread(script, { module, data: { n: 1 } }, 19);
    const hello = await next<Hello>(t, 'message');
    expect(hello).toMatchObject({ bornNice: 19, data: { n: 1 } });
    expect(niceOf('thread-self')).toBe(mainNice);
    expect(nicedSpawnerTids().map(niceOf)).toContain(19);
    expect(t.threadId).toBeGreaterThan(0);
    const buffer = new Uint8Array([1, 2, 3]).buffer;
    const echoed = next<{ buffer: ArrayBuffer }>(t, 'message');
    t.postMessage({ type: 'echo', buffer }, [buffer]);
    expect(buffer.byteLength).toBe(0); // transferred, not copied
    expect([...new Uint8Array((await echoed).buffer)]).toEqual([1, 2, 3]);
    const exit = next<number>(t, 'exit');
    expect(await t.terminate()).toBe(1);
    expect(await exit).toBe(1);
    // A thread at another niceness gets a spawner of its own.
    const t0 = startNicedThread(script, { module }, 5);
    expect((await next<Hello>(t0, 'message')).bornNice).toBe(5);
    await t0.terminate();
  });

  it("a thread's resource limits reach it through the spawner (a kept build thread's young generation is capped so)", async () => {
    const capped = startNicedThread(script, { module }, 19, { maxYoungGenerationSizeMb: 8 });
    const hello = await next<Hello & { resourceLimits: { maxYoungGenerationSizeMb: number } }>(capped, 'message');
    expect(hello.bornNice).toBe(19);
    expect(hello.resourceLimits.maxYoungGenerationSizeMb).toBe(8);
    await capped.terminate();
    const plain = startNicedThread(script, { module }, 19);
    expect((await next<Hello & { resourceLimits: { maxYoungGenerationSizeMb: number } }>(plain, 'message')).resourceLimits.maxYoungGenerationSizeMb).not.toBe(8);
    await plain.terminate();
  });

  it("a thread's uncaught error and its exit reach the event loop; an exit code of its own is kept", async () => {
    const t = startNicedThread(script, { module }, 19);
    await next<Hello>(t, 'message');
    const err = next<Error>(t, 'error');
    const exit = next<number>(t, 'exit');
    t.postMessage({ type: 'throw' });
    expect((await err).message).toBe('thrown on request');
    expect(await exit).toBe(1);
    // Messages to an ended thread are dropped, not thrown.
    t.postMessage({ type: 'echo' });
    const t2 = startNicedThread(script, { module }, 19);
    await next<Hello>(t2, 'message');
    const exit2 = next<number>(t2, 'exit');
    t2.postMessage({ type: 'exit', code: 7 });
    expect(await exit2).toBe(7);
    expect(await t2.terminate()).toBe(7);
  });

  it('a worker script run outside a thread gets RAG_INTERNAL from threadPort(), not a crash later', () => {
    expect(isMainThread).toBe(true); // vitest's forks pool: test files run on a process's main thread
    expect(() => threadPort({})).toThrow(expect.objectContaining({ code: 'RAG_INTERNAL' }));
  });

  it('a script that cannot start is an error and an exit, not a crash', async () => {
    const t = startNicedThread('/no/such/script.mjs', {}, 19);
    const [err, code] = await Promise.all([next<Error>(t, 'error'), next<number>(t, 'exit')]);
    expect(err.message).toMatch(/no\/such\/script|Cannot find module/);
    expect(code).not.toBe(0);
  });
});
