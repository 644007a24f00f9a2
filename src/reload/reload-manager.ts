import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { RagError, toRagError, type ErrorCode } from '../errors.js';
import { chooseModelName } from '../embeddings/model-folders.js';
import { inspectModelFolder, loadEmbeddingModel } from '../embeddings/model-loader.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ChromaServerEvents } from '../store/chroma-server.js';
import { fingerprint, resolveStoreCandidate, SQLITE_FILE, type StoreCandidate } from '../store/layout.js';
import { readManifest } from '../store/manifest.js';
import { openRemoteStore, openStoreVersion, type OpenedStore } from '../store/store-version.js';
import { Generation, SharedModel, type GenerationInfo, type Lease } from './generation.js';

export const ReloadEvents = {
  started: 'reload.started',
  accepted: 'reload.accepted',
  rejected: 'reload.rejected',
  superseded: 'reload.superseded',
  unchanged: 'reload.unchanged',
  rolledBack: 'reload.rolled_back',
  retired: 'generation.retired',
  chromaRestarted: 'chroma.restarted',
} as const;
export type ReloadEventName = (typeof ReloadEvents)[keyof typeof ReloadEvents];

export type ReloadOutcome = 'accepted' | 'rejected' | 'superseded' | 'unchanged' | 'rolled_back';

export interface ReloadAttempt {
  id: number;
  trigger: string;
  startedAt: string;
  durationMs: number;
  outcome: ReloadOutcome;
  generation: string | null;
  storeVersion: string | null;
  model: string | null;
  error: { code: ErrorCode; message: string } | null;
  /** Where the build time went (ms), for accepted attempts. */
  phases?: Record<string, number>;
}

export interface ReloadEvent {
  type: ReloadEventName;
  at: string;
  attempt?: ReloadAttempt;
  generation?: GenerationInfo;
}

/** The generation already runs the model in this folder with these ONNX weights. */
function servesModel(gen: Generation, modelDir: string, onnxSha256: string): boolean {
  return gen.model.dir === modelDir && gen.model.id.endsWith(onnxSha256.slice(0, 12));
}

/** What a generation is built from: a store (on disk or remote) and a model folder. */
interface GenerationSpec {
  candidate: StoreCandidate | null; // null in CHROMA_URL mode
  modelDir: string;
}

/**
 * Owns the generations. The active one is a single reference: `acquire()` reads it once, so a
 * request never sees two generations. Reloads run one at a time: validate -> build (standby)
 * -> swap (one assignment) -> drain the old one -> dispose it. A request for a reload that
 * arrives mid-build supersedes the build in progress; at most two generations exist at once.
 */
export class ReloadManager extends EventEmitter {
  private active: Generation | null = null;
  private previousSpec: GenerationSpec | null = null;
  private activeSpec: GenerationSpec | null = null;
  private retiring: Promise<void> = Promise.resolve();
  private loop: Promise<void> | null = null;
  private pending: { trigger: string; force: boolean } | null = null;
  private genCounter = 0;
  private attemptCounter = 0;
  private readonly history: ReloadAttempt[] = [];
  private lastError: ReloadAttempt | null = null;
  /** After a rollback, the version rolled back from is not picked up again by the watcher. */
  private pinnedAway: string | null = null;
  private closed = false;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    super();
    this.setMaxListeners(1000);
  }

  get current(): Generation | null {
    return this.active;
  }

  /** The active generation with a lease, or RAG_NOT_READY. One read of one reference. */
  acquire(): Lease {
    const gen = this.active;
    if (!gen) {
      throw new RagError('RAG_NOT_READY', this.lastError?.error ? `no generation is serving yet: ${this.lastError.error.message}` : 'no generation is serving yet');
    }
    return gen.acquire();
  }

  /** Build and activate the first generation (start-up). Throws when it cannot. */
  async start(): Promise<Generation> {
    await this.reload('startup', { force: true });
    if (!this.active) {
      const err = this.lastError?.error;
      throw new RagError(err?.code ?? 'RAG_RELOAD_FAILED', err?.message ?? 'the first generation could not be built');
    }
    return this.active;
  }

  /**
   * Ask for a reload; resolves with the attempt that handled it. Requests that arrive while a
   * build runs are merged into one follow-up build (the newest files win).
   */
  reload(trigger: string, options: { force?: boolean } = {}): Promise<ReloadAttempt | null> {
    if (this.closed) return Promise.resolve(null);
    const force = (options.force ?? false) || (this.pending?.force ?? false);
    this.pending = { trigger, force };
    if (force) this.pinnedAway = null;
    if (!this.loop) {
      this.loop = this.runLoop().finally(() => {
        this.loop = null;
      });
    }
    const before = this.attemptCounter;
    return this.loop.then(() => this.history.find((a) => a.id > before && a.outcome !== 'superseded') ?? this.history[0] ?? null);
  }

  private async runLoop(): Promise<void> {
    while (this.pending && !this.closed) {
      const { trigger, force } = this.pending;
      this.pending = null;
      // At most two generations: wait until the previous retiree is gone before building.
      await this.retiring;
      await this.attempt(trigger, force);
    }
  }

  private record(attempt: Omit<ReloadAttempt, 'id'>, type: ReloadEventName, generation?: GenerationInfo): ReloadAttempt {
    const full: ReloadAttempt = { id: ++this.attemptCounter, ...attempt };
    this.history.unshift(full);
    this.history.length = Math.min(this.history.length, this.config.reloadHistory);
    this.metrics.reloads.inc({ outcome: full.outcome, code: full.error?.code ?? '' });
    this.metrics.reloadDuration.observe({ outcome: full.outcome }, full.durationMs / 1000);
    if (full.outcome === 'rejected') this.lastError = full;
    this.emit('event', { type, at: new Date().toISOString(), attempt: full, ...(generation ? { generation } : {}) } satisfies ReloadEvent);
    return full;
  }

  private async resolveSpec(): Promise<GenerationSpec> {
    const candidate = this.config.chromaUrl ? null : await resolveStoreCandidate(this.config.vectorstoreDir);
    const modelName = await chooseModelName(this.config.modelsDir, this.config.modelName, candidate?.manifest?.embedding.model);
    return { candidate, modelDir: join(this.config.modelsDir, modelName) };
  }

  private async attempt(trigger: string, force: boolean, specOverride?: GenerationSpec): Promise<void> {
    const t0 = performance.now();
    const startedAt = new Date().toISOString();
    this.emit('event', { type: ReloadEvents.started, at: startedAt } satisfies ReloadEvent);
    let spec: GenerationSpec | null = null;
    let built: Generation | null = null;
    let modelSha: string | null = null;
    try {
      spec = specOverride ?? (await this.resolveSpec());
      const facts = await inspectModelFolder(spec.modelDir, this.config.modelDtype);
      modelSha = facts.onnxSha256;
      const version = spec.candidate?.version ?? null;
      const cur = this.active;
      if (!force && !specOverride && version && version === this.pinnedAway) {
        this.record(
          { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome: 'unchanged', generation: cur?.id ?? null, storeVersion: version, model: facts.name, error: null },
          ReloadEvents.unchanged,
        );
        return;
      }
      if (!force && cur && cur.store.version === version && servesModel(cur, spec.modelDir, facts.onnxSha256)) {
        this.record(
          { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome: 'unchanged', generation: cur.id, storeVersion: version, model: cur.model.id, error: null },
          ReloadEvents.unchanged,
        );
        return;
      }
      built = await this.build(spec, facts.onnxSha256);
      if (this.pending && !specOverride) {
        // Newer files arrived while this one was built: it is already stale.
        await built.dispose();
        this.record(
          { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome: 'superseded', generation: null, storeVersion: built.store.version, model: built.model.id, error: null },
          ReloadEvents.superseded,
        );
        return;
      }
      this.swap(built, spec);
      const outcome: ReloadOutcome = specOverride ? 'rolled_back' : 'accepted';
      this.record(
        { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome, generation: built.id, storeVersion: built.store.version, model: built.model.id, error: null, phases: built.phases },
        specOverride ? ReloadEvents.rolledBack : ReloadEvents.accepted,
        built.info(),
      );
      this.logger.info({ generation: built.id, store: built.store.version, model: built.model.id, trigger, ms: Math.round(performance.now() - t0) }, 'generation swapped in');
    } catch (err) {
      const e = toRagError(err, 'RAG_RELOAD_FAILED');
      if (built) await built.dispose().catch(() => undefined);
      this.logger.warn({ code: e.code, err: e.message, trigger }, 'reload rejected; the current generation keeps serving');
      this.record(
        {
          trigger,
          startedAt,
          durationMs: Math.round(performance.now() - t0),
          outcome: 'rejected',
          generation: this.active?.id ?? null,
          storeVersion: spec?.candidate?.version ?? null,
          model: spec ? `${spec.modelDir.split('/').pop()}${modelSha ? `@${modelSha.slice(0, 12)}` : ''}` : null,
          error: { code: e.code, message: e.message },
        },
        ReloadEvents.rejected,
      );
    }
  }

  /** Validate and build a standby generation; nothing here touches the active one. */
  private async build(spec: GenerationSpec, onnxSha: string): Promise<Generation> {
    const cur = this.active;
    const t0 = performance.now();
    let shared: SharedModel;
    if (cur && servesModel(cur, spec.modelDir, onnxSha)) {
      shared = cur.sharedModel; // the same weights: share the loaded session
    } else {
      const before = await fingerprint(spec.modelDir);
      const model = await loadEmbeddingModel({ dir: spec.modelDir, dtype: this.config.modelDtype, pooling: this.config.pooling });
      if ((await fingerprint(spec.modelDir)) !== before) {
        await model.dispose();
        throw new RagError('RAG_MODEL_WRITE_IN_PROGRESS', `model folder ${spec.modelDir} changed while it was loading (a copy is still in progress)`);
      }
      shared = new SharedModel(model);
    }
    shared.retain(); // held by this build until the generation takes its own reference
    const tStore = performance.now();
    let store: OpenedStore | null = null;
    try {
      store = spec.candidate
        ? await openStoreVersion(spec.candidate, {
            runtimeDir: this.config.runtimeDir,
            logger: this.logger,
            collection: this.config.collection,
            chromaStartTimeoutMs: this.config.chromaStartTimeoutMs,
            serveIndexMaxMb: this.config.serveIndexMaxMb,
            indexLoadTimeoutMs: this.config.indexLoadTimeoutMs,
          })
        : await openRemoteStore(this.config.chromaUrl!, this.config.collection, { indexLoadTimeoutMs: this.config.indexLoadTimeoutMs });
      if (store.dimension !== shared.model.dimension) {
        throw new RagError(
          'RAG_STORE_DIMENSION_MISMATCH',
          `model ${shared.model.name} makes ${shared.model.dimension}-d vectors but store ${store.version} holds ${store.dimension}-d vectors; ` +
            'publish a store built with this model (or select the model the store was built with)',
        );
      }
      const tProbe = performance.now();
      // Probe: a real query through this pair must give finite scores.
      const [probe] = await shared.model.embedBatch(['probe query for validation']);
      const hits = await store.store.query(probe!, 1);
      if (hits.length === 0 || !hits.every((h) => Number.isFinite(h.score))) {
        throw new RagError('RAG_STORE_PROBE_FAILED', `a probe query on store ${store.version} returned ${hits.length ? 'non-finite scores' : 'no results'}`);
      }
      const gen = new Generation(`g${++this.genCounter}`, shared, store, {
        maxBatch: this.config.embedBatchMax,
        maxWaitMs: this.config.embedBatchWaitMs,
        onBatch: (n) => this.metrics.embedBatchSize.observe(n),
      });
      gen.phases = { model: Math.round(tStore - t0), ...store.phases, probe: Math.round(performance.now() - tProbe) };
      store.server?.on(ChromaServerEvents.restarted, () => {
        this.metrics.chromaRestarts.inc();
        this.emit('event', { type: ReloadEvents.chromaRestarted, at: new Date().toISOString(), generation: gen.info() } satisfies ReloadEvent);
      });
      return gen;
    } catch (err) {
      await store?.dispose();
      throw err;
    } finally {
      await shared.release();
    }
  }

  /** The swap: one reference assignment. The old generation drains, then is disposed. */
  private swap(next: Generation, spec: GenerationSpec): void {
    const old = this.active;
    next.activate();
    this.active = next;
    this.previousSpec = this.activeSpec ?? this.previousSpec;
    this.activeSpec = spec;
    this.metrics.generationInfo.reset();
    this.metrics.generationInfo.set({ generation: next.id, model: next.model.id, store_version: next.store.version }, 1);
    if (old) {
      this.retiring = this.retire(old);
    }
    this.metrics.generationsLive.set(old ? 2 : 1);
  }

  private async retire(old: Generation): Promise<void> {
    const drained = await old.drain(this.config.drainTimeoutMs);
    if (!drained) this.logger.warn({ generation: old.id, inflight: old.inflight }, 'drain timeout; disposing with requests in flight');
    await old.dispose();
    this.metrics.generationsLive.set(this.active ? 1 : 0);
    this.emit('event', { type: ReloadEvents.retired, at: new Date().toISOString(), generation: old.info() } satisfies ReloadEvent);
  }

  /** Go back to the previous good generation's files, if they are still on disk. */
  async rollback(): Promise<ReloadAttempt> {
    const prev = this.previousSpec;
    if (!prev) throw new RagError('RAG_RELOAD_NO_PREVIOUS', 'there is no previous generation to roll back to');
    // Take the reload loop's place, so a rollback never builds beside another build.
    while (this.loop) await this.loop;
    let result: ReloadAttempt | undefined;
    const run = (async () => {
      await this.retiring;
      const from = this.active?.store.version ?? null;
      const before = this.attemptCounter;
      const candidate = prev.candidate ? await this.refreshCandidate(prev.candidate) : null;
      await this.attempt('rollback', true, { candidate, modelDir: prev.modelDir });
      result = this.history.find((a) => a.id > before)!;
      if (result.outcome === 'rolled_back') {
        this.pinnedAway = from;
        this.previousSpec = null;
      }
    })();
    this.loop = run.catch(() => undefined).finally(() => {
      this.loop = null;
      // Changes that arrived during the rollback are handled now.
      if (this.pending && !this.closed) void this.reload(this.pending.trigger, { force: this.pending.force });
    });
    await run;
    return result!;
  }

  private async refreshCandidate(c: StoreCandidate): Promise<StoreCandidate> {
    // The previous version's folder must still exist; re-read its manifest from disk.
    if (!existsSync(join(c.dir, SQLITE_FILE))) {
      throw new RagError('RAG_RELOAD_NO_PREVIOUS', `the previous store version ${c.version} is no longer on disk`);
    }
    return { ...c, manifest: c.kind === 'versioned' ? await readManifest(c.dir) : c.manifest };
  }

  status(): {
    ready: boolean;
    active: GenerationInfo | null;
    previous: { storeVersion: string | null; model: string } | null;
    reloading: boolean;
    pinnedAway: string | null;
    lastError: ReloadAttempt | null;
    history: ReloadAttempt[];
  } {
    return {
      ready: this.active !== null,
      active: this.active?.info() ?? null,
      previous: this.previousSpec
        ? { storeVersion: this.previousSpec.candidate?.version ?? null, model: this.previousSpec.modelDir.split('/').pop() ?? '' }
        : null,
      reloading: this.loop !== null,
      pinnedAway: this.pinnedAway,
      lastError: this.lastError,
      history: [...this.history],
    };
  }

  /** Stop reloading, drain and dispose every generation (children included). Idempotent. */
  async close(drainTimeoutMs = this.config.drainTimeoutMs): Promise<void> {
    this.closed = true;
    this.pending = null;
    await this.loop?.catch(() => undefined);
    await this.retiring;
    const gen = this.active;
    this.active = null;
    if (gen) {
      await gen.drain(drainTimeoutMs);
      await gen.dispose();
    }
    this.metrics.generationsLive.set(0);
  }
}
