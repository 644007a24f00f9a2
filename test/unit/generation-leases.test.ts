import { describe, expect, it } from 'vitest';
import type { EmbeddingModel } from '../../src/embeddings/model-loader.js';
import { RagError } from '../../src/errors.js';
import { Generation, SharedModel } from '../../src/reload/generation.js';
import type { OpenedStore } from '../../src/store/store-version.js';

/**
 * Lease and drain accounting of a Generation: pure bookkeeping, so the model and the store are
 * stand-ins that only count their disposals (the real ones are covered by the reload tests).
 */
function stubs() {
  const disposed = { model: 0, store: 0 };
  const model = { dispose: async () => void disposed.model++ } as unknown as EmbeddingModel;
  const store = { store: {}, dispose: async () => void disposed.store++ } as unknown as OpenedStore;
  return { disposed, model, store };
}

let next = 0;
function generation(shared?: SharedModel, store?: OpenedStore): { gen: Generation; disposed: { model: number; store: number } } {
  const s = stubs();
  const gen = new Generation(`g${next++}`, shared ?? new SharedModel(s.model), store ?? s.store, { maxBatch: 8, maxWaitMs: 0 });
  return { gen, disposed: s.disposed };
}

/** A generation that serves (activated), for the lease and drain rows. */
function active(): Generation {
  const { gen } = generation();
  gen.activate();
  return gen;
}

/** Resolves to 'pending' if p has not settled after the current macrotask queue drains. */
const settled = <T>(p: Promise<T>): Promise<T | 'pending'> => Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);

describe('generation leases', () => {
  it('counts leases: acquire adds one, release takes one', () => {
    const gen = active();
    expect(gen.inflight).toBe(0);
    const a = gen.acquire();
    const b = gen.acquire();
    expect(a.generation).toBe(gen);
    expect(gen.inflight).toBe(2);
    a.release();
    expect(gen.inflight).toBe(1);
    b.release();
    expect(gen.inflight).toBe(0);
  });

  it('a lease released twice counts once', () => {
    const gen = active();
    const a = gen.acquire();
    const b = gen.acquire();
    a.release();
    a.release();
    expect(gen.inflight).toBe(1);
    b.release();
    expect(gen.inflight).toBe(0);
  });

  it('states: standby until activated, active, draining once drained, disposed after dispose', async () => {
    const { gen } = generation();
    expect(gen.state).toBe('standby');
    gen.activate();
    expect(gen.state).toBe('active');
    await gen.drain(1000);
    expect(gen.state).toBe('draining');
    await gen.dispose();
    expect(gen.state).toBe('disposed');
  });

  it('a disposed generation refuses new leases with RAG_NOT_READY', async () => {
    const gen = active();
    await gen.dispose();
    expect(() => gen.acquire()).toThrow(RagError);
    try {
      gen.acquire();
    } catch (err) {
      expect((err as RagError).code).toBe('RAG_NOT_READY');
    }
    expect(gen.inflight).toBe(0);
  });

  it('a draining generation still lends leases (a request that read it before the swap)', async () => {
    const gen = active();
    const first = gen.acquire();
    const drained = gen.drain(60_000);
    const late = gen.acquire();
    expect(gen.inflight).toBe(2);
    first.release();
    expect(await settled(drained)).toBe('pending');
    late.release();
    expect(await drained).toBe(true);
  });
});

describe('generation drain', () => {
  it('resolves true at once when nothing is in flight', async () => {
    const gen = active();
    expect(await settled(gen.drain(60_000))).toBe(true);
  });

  it('waits for the last lease, then resolves true', async () => {
    const gen = active();
    const leases = [gen.acquire(), gen.acquire(), gen.acquire()];
    const drained = gen.drain(60_000);
    leases[0]!.release();
    leases[1]!.release();
    expect(await settled(drained)).toBe('pending');
    leases[2]!.release();
    expect(await drained).toBe(true);
  });

  it('resolves false when the timeout passes first, and the lease stays counted', async () => {
    const gen = active();
    const lease = gen.acquire();
    expect(await gen.drain(20)).toBe(false);
    expect(gen.inflight).toBe(1);
    lease.release();
    expect(gen.inflight).toBe(0);
  });

  it('every concurrent drain caller is told when the last lease goes', async () => {
    const gen = active();
    const lease = gen.acquire();
    const a = gen.drain(60_000);
    const b = gen.drain(60_000);
    lease.release();
    expect(await Promise.all([a, b])).toEqual([true, true]);
  });

  it('a drain that timed out does not fire again when the lease is later released', async () => {
    const gen = active();
    const lease = gen.acquire();
    const timedOut = await gen.drain(10);
    const again = gen.drain(60_000);
    lease.release();
    expect(timedOut).toBe(false);
    expect(await again).toBe(true);
  });
});

describe('generation dispose and the shared model', () => {
  it('is idempotent: one promise, the store disposed once', async () => {
    const { gen, disposed } = generation();
    gen.activate();
    const p1 = gen.dispose();
    const p2 = gen.dispose();
    expect(p1).toBe(p2);
    await p1;
    expect(disposed).toEqual({ model: 1, store: 1 });
  });

  it('a standby generation (never activated) can be disposed', async () => {
    const { gen, disposed } = generation();
    await gen.dispose();
    expect(disposed).toEqual({ model: 1, store: 1 });
  });

  it('the model is disposed only when the last generation holding it is disposed', async () => {
    const s = stubs();
    const shared = new SharedModel(s.model);
    const storeA = stubs();
    const storeB = stubs();
    const { gen: a } = generation(shared, storeA.store);
    const { gen: b } = generation(shared, storeB.store);
    a.activate();
    await a.dispose();
    expect(storeA.disposed.store).toBe(1);
    expect(s.disposed.model).toBe(0);
    await b.dispose();
    expect(storeB.disposed.store).toBe(1);
    expect(s.disposed.model).toBe(1);
  });

  it('activating twice is an illegal transition', () => {
    const gen = active();
    expect(() => gen.activate()).toThrow(/illegal transition serving -> serving/);
  });
});
