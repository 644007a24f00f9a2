import { describe, expect, it } from 'vitest';
import { RagError } from '../../src/errors.js';
import { runPhase } from '../../src/reload/loader.js';

/**
 * A build phase (reload/loader.ts runPhase): its timeout and cancellation reject at once, while
 * the work goes on until its own abort check; that abandoned work is handed to `track` with its
 * late result disposed, so a stop can wait for it (GenerationLoader.settled).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runPhase', () => {
  it('returns the result of the work and tracks nothing when it finishes in time', async () => {
    const tracked: Array<Promise<unknown>> = [];
    await expect(runPhase('p', 1000, new AbortController().signal, async () => 7, undefined, (l) => tracked.push(l))).resolves.toBe(7);
    expect(tracked).toEqual([]);
  });

  it('cancelled: rejects at once with the reason; the work ends later, its result is disposed, and the tracked promise settles after that', async () => {
    const parent = new AbortController();
    const events: string[] = [];
    const tracked: Array<Promise<unknown>> = [];
    const phase = runPhase(
      'snapshot',
      60_000,
      parent.signal,
      async () => {
        await sleep(100); // a copy that notices the abort only at its next chunk
        events.push('work ended');
        return 'half snapshot';
      },
      async (v) => {
        await sleep(20);
        events.push(`disposed ${v}`);
      },
      (l) => tracked.push(l),
    );
    parent.abort(new RagError('RAG_RELOAD_CANCELLED', 'the service is shutting down'));
    await expect(phase).rejects.toMatchObject({ code: 'RAG_RELOAD_CANCELLED' });
    expect(events).toEqual([]);
    expect(tracked.length).toBe(1);
    await tracked[0];
    expect(events).toEqual(['work ended', 'disposed half snapshot']);
  });

  it('timed out: RAG_RELOAD_TIMEOUT naming the phase; a work that then fails is tracked too (its failure swallowed)', async () => {
    const tracked: Array<Promise<unknown>> = [];
    const phase = runPhase(
      'open',
      30,
      new AbortController().signal,
      async (signal) => {
        await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
        await sleep(50);
        throw new Error('stopped after the abort');
      },
      undefined,
      (l) => tracked.push(l),
    );
    await expect(phase).rejects.toMatchObject({ code: 'RAG_RELOAD_TIMEOUT', message: expect.stringContaining('build phase "open" took longer than 30 ms') });
    expect(tracked.length).toBe(1);
    await expect(tracked[0]).resolves.toBeUndefined();
  });
});
