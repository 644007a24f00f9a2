import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { RagError } from '../../src/errors.js';
import type { EmbeddingModel } from '../../src/embeddings/model-loader.js';
import { createSilentLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { Generation, SharedModel } from '../../src/reload/generation.js';
import type { Loader, LoadRequest, LoadResult } from '../../src/reload/loader.js';
import { enqueue, nextAction, type PolicyInput } from '../../src/reload/policy.js';
import { ReloadManager } from '../../src/reload/reload-manager.js';
import type { AspiredSpec } from '../../src/reload/source.js';
import { harnessMachine, managerMachine } from '../../src/reload/state-machine.js';
import type { OpenedStore } from '../../src/store/store-version.js';

const base: PolicyInput = {
  closed: false,
  building: false,
  request: { kind: 'refresh', force: false },
  activeKey: 'A',
  aspired: { ok: true, key: 'B' },
  pinnedAwayKey: null,
  lastRejectedKey: null,
  previousKey: null,
};

describe('policy: (active, building, aspired, pinned) -> next action', () => {
  it.each([
    ['nothing queued', { request: null }, { type: 'none' }],
    ['closed', { closed: true }, { type: 'none' }],
    ['a build in flight is never superseded', { building: true }, { type: 'wait' }],
    ['new content', {}, { type: 'build', forced: false }],
    ['same content as served', { aspired: { ok: true, key: 'A' } }, { type: 'unchanged', reason: 'serving' }],
    ['content rolled back from', { pinnedAwayKey: 'B' }, { type: 'unchanged', reason: 'pinned' }],
    ['content rejected before', { lastRejectedKey: 'B' }, { type: 'unchanged', reason: 'rejected-before' }],
    ['forced rebuild of the same content', { aspired: { ok: true, key: 'A' }, request: { kind: 'refresh', force: true } }, { type: 'build', forced: true }],
    ['forced rebuild of a pinned version', { pinnedAwayKey: 'B', request: { kind: 'refresh', force: true } }, { type: 'build', forced: true }],
    ['folders unresolvable', { aspired: { ok: false, code: 'RAG_STORE_LAYOUT_AMBIGUOUS', message: 'x', waiting: false } }, { type: 'unresolved', waiting: false }],
    ['a writer at work', { aspired: { ok: false, code: 'RAG_STORE_WRITE_IN_PROGRESS', message: 'x', waiting: true } }, { type: 'unresolved', waiting: true }],
    ['rollback with a previous', { request: { kind: 'rollback' }, previousKey: 'P' }, { type: 'rollback' }],
    ['rollback without a previous', { request: { kind: 'rollback' } }, { type: 'no-previous' }],
    ['rollback waits for a build too', { request: { kind: 'rollback' }, previousKey: 'P', building: true }, { type: 'wait' }],
  ] as const)('%s', (_name, patch, want) => {
    expect(nextAction({ ...base, ...(patch as Partial<PolicyInput>) })).toEqual(want);
  });

  it('merges queued refreshes (a force wins) and keeps rollbacks in place', () => {
    let q = enqueue([], { kind: 'refresh', force: false }).queue;
    q = enqueue(q, { kind: 'refresh', force: true }).queue;
    expect(q).toEqual([{ kind: 'refresh', force: true }]);
    q = enqueue(q, { kind: 'rollback' }).queue;
    q = enqueue(q, { kind: 'refresh', force: false }).queue;
    expect(q.map((r) => r.kind)).toEqual(['refresh', 'rollback', 'refresh']);
  });
});

describe('state machines: guarded transitions', () => {
  it('an illegal transition throws RAG_RELOAD_ILLEGAL_TRANSITION', () => {
    const m = managerMachine();
    expect(() => m.transition('swapping')).toThrowError(/illegal transition idle -> swapping/);
    try {
      m.transition('closed');
    } catch (err) {
      expect(err).toBeInstanceOf(RagError);
      expect((err as RagError).code).toBe('RAG_RELOAD_ILLEGAL_TRANSITION');
    }
    m.transition('building');
    m.transition('swapping');
    m.transition('idle');
    m.transition('closing');
    expect(() => m.transition('building')).toThrowError(/closing -> building/);
    m.transition('closed');
    expect(m.state).toBe('closed');
  });

  it('a generation goes new -> loading -> ready -> serving -> quiescing -> disabled, never back', () => {
    const h = harnessMachine('g1');
    for (const s of ['loading', 'ready', 'serving', 'quiescing', 'disabled'] as const) h.transition(s);
    expect(() => h.transition('serving')).toThrowError(/disabled -> serving/);
    const h2 = harnessMachine('g2');
    expect(() => h2.transition('serving')).toThrowError(/new -> serving/);
  });
});

// ---- the manager with a fake loader: the one place where our own code is faked (policy tests) ----

function fakeModel(): EmbeddingModel {
  return {
    id: 'fake@000000000000',
    name: 'fake',
    dir: '/fake',
    dtype: 'fp32',
    dimension: 2,
    profile: { pooling: ['mean'], poolingSource: 'default', includePrompt: true, normalize: true, maxLength: null, prompts: {} },
    loadedAt: new Date().toISOString(),
    loadMs: 0,
    embedBatch: async (texts: string[]) => texts.map(() => [1, 0]),
    dispose: async () => undefined,
  };
}

function fakeStore(version: string): OpenedStore {
  return {
    version,
    kind: 'versioned',
    sourceDir: null,
    snapshotDir: null,
    acceptanceText: null,
    manifest: null,
    store: { name: 'docs', describe: () => ({ kind: 'in-process', vectorIndex: 'fake', space: 'cosine', memoryMiB: 0, loadMs: 0 }) } as unknown as OpenedStore['store'],
    keyword: { origin: 'built', size: 0, searchedOn: 'event-loop' },
    server: null,
    count: 1,
    dimension: 2,
    openMs: 0,
    phases: {},
    dispose: async () => undefined,
  };
}

function spec(version: string): AspiredSpec {
  return {
    store: { kind: 'versioned', dir: `/vs/${version}`, version, manifest: null, files: [], unlisted: [], fingerprint: version },
    model: { name: 'fake', dir: '/fake', fingerprint: 'm', files: 1 },
    key: `${version}|m`,
    resolvedAt: new Date().toISOString(),
  };
}

/** Builds take `ms`; versions listed in `bad` fail. Records what it built. */
class FakeLoader implements Loader {
  built: string[] = [];
  constructor(
    private readonly ms: number,
    private readonly bad = new Set<string>(),
  ) {}
  async load(req: LoadRequest): Promise<LoadResult> {
    const v = req.spec.store!.version;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, this.ms);
      req.signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(req.signal.reason);
      });
    });
    this.built.push(v);
    if (this.bad.has(v)) throw new RagError('RAG_STORE_CHECKSUM_MISMATCH', `bad ${v}`);
    const gen = new Generation(req.generationId, new SharedModel(fakeModel()), fakeStore(v), { maxBatch: 4, maxWaitMs: 0 });
    return { generation: gen, phases: {}, acceptance: null, replay: null };
  }
}

function makeManager(loader: Loader, source: () => Promise<AspiredSpec>) {
  const config = loadConfig({ LOG_LEVEL: 'silent', DRAIN_TIMEOUT_MS: '100', RELOAD_REPLAY_N: '0' });
  return new ReloadManager(config, createSilentLogger(), createMetrics({ defaultMetrics: false }), { loader, source, respec: async (prev) => prev });
}

describe('manager: one queue, never starves', () => {
  it('under a publish every tick with builds as long as the ticks, every completed build is served and the newest serves last', async () => {
    let published = 'v00';
    const loader = new FakeLoader(30);
    const m = makeManager(loader, async () => spec(published));
    await m.start();
    const served: string[] = [];
    m.on('event', (e: { type: string; attempt?: { storeVersion: string } }) => {
      if (e.type === 'reload.accepted') served.push(e.attempt!.storeVersion);
    });
    const waits: Array<Promise<unknown>> = [];
    for (let i = 1; i <= 12; i++) {
      await new Promise((r) => setTimeout(r, 25));
      published = `v${String(i).padStart(2, '0')}`;
      waits.push(m.reload(`watch:${i}`));
    }
    await Promise.all(waits);
    // No build is ever superseded: everything the loader built (after start) was served.
    expect(served).toEqual(loader.built.slice(1));
    expect(m.current!.store.version).toBe('v12');
    expect(m.status().history.some((a) => a.outcome === 'superseded')).toBe(false);
    await m.close();
  });

  it('a rollback requested during a build acts on the state when it runs (it goes to the version before the one just built)', async () => {
    let published = 'v1';
    const m = makeManager(new FakeLoader(40), async () => spec(published));
    await m.start();
    published = 'v2';
    await m.reload('watch');
    published = 'v3';
    const building = m.reload('watch');
    await new Promise((r) => setTimeout(r, 10));
    expect(m.status().building?.storeVersion).toBe('v3');
    const rb = m.rollback();
    await building;
    const attempt = await rb;
    expect(attempt.outcome).toBe('rolled_back');
    expect(attempt.storeVersion).toBe('v2'); // previous of v3 at the time it ran, not of v2
    // The watcher does not take v3 again until something new is published.
    const again = await m.reload('watch');
    expect(again?.outcome).toBe('unchanged');
    expect(m.current!.store.version).toBe('v2');
    await m.close();
  });

  it('lastError is the latest failed attempt and clears on a later success; a rejected content is not rebuilt until it changes', async () => {
    let published = 'v1';
    const loader = new FakeLoader(5, new Set(['bad']));
    const m = makeManager(loader, async () => spec(published));
    await m.start();
    published = 'bad';
    const rejected = await m.reload('watch');
    expect(rejected?.outcome).toBe('rejected');
    expect(m.status().lastError?.id).toBe(rejected!.id);
    const builds = loader.built.length;
    expect((await m.reload('watch'))?.id).toBe(rejected!.id); // same bytes: not rebuilt
    expect(loader.built.length).toBe(builds);
    published = 'v2';
    const ok = await m.reload('watch');
    expect(ok?.outcome).toBe('accepted');
    expect(m.status().lastError).toBeNull();
    expect(m.status().lastSuccess?.id).toBe(ok!.id);
    expect(m.status().active?.attempt).toBe(ok!.id);
    await m.close();
  });

  it('attemptFor(version): the attempt that built it, not a later `unchanged` one (a second reload of the same folders)', async () => {
    let published = 'v1';
    const m = makeManager(new FakeLoader(5), async () => spec(published));
    await m.start();
    published = 'v2';
    const built = await m.reload('watch');
    const again = await m.reload('documents:upload');
    expect(built).toMatchObject({ outcome: 'accepted', storeVersion: 'v2' });
    expect(again?.outcome).toBe('unchanged');
    expect(m.attemptFor('v2')).toEqual(built);
    expect(m.attemptFor('v9')).toBeNull();
    await m.close();
  });

  it('close() during a build cancels it and ends promptly', async () => {
    let published = 'v1';
    const m = makeManager(new FakeLoader(20), async () => spec(published));
    await m.start();
    const slow = new FakeLoader(60_000);
    const m2 = makeManager(slow, async () => spec(published));
    const first = m2.reload('startup', { force: true });
    await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    await m2.close();
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await first)?.error?.code).toBe('RAG_RELOAD_CANCELLED');
    expect(m2.state).toBe('closed');
    published = 'v2';
    await m.close();
  });
});
