import { EventEmitter } from 'node:events';
import type { Config } from '../config.js';
import { RagError, toRagError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ChromaServerEvents } from '../store/chroma-server.js';
import { Generation, type GenerationInfo, type Lease } from './generation.js';
import { ReloadEvents, ReloadHistory, type ReloadAttempt, type ReloadEvent, type ReloadEventName, type ReloadOutcome } from './history.js';
import { chromaStoreOpener, GenerationLoader, type AcceptanceResult, type Loader, type ReplayResult } from './loader.js';
import { enqueue, nextAction, type AspiredView, type QueuedRequest } from './policy.js';
import { WriterActiveError } from '../store/layout.js';
import { resolveAgain, resolveAspired, type AspiredSpec } from './source.js';
import { managerMachine, type ManagerState, type StateMachine } from './state-machine.js';

export { ReloadEvents, type ReloadAttempt, type ReloadEvent, type ReloadEventName, type ReloadOutcome } from './history.js';

/** How the manager resolves the folders (a seam for the policy unit tests only). */
export type SourceFn = (signal?: AbortSignal) => Promise<AspiredSpec>;
/** How a rollback re-reads the previous spec's files (same seam). */
export type RespecFn = (prev: AspiredSpec) => Promise<AspiredSpec>;

interface Waiter {
  resolve: (a: ReloadAttempt | null) => void;
  reject: (e: unknown) => void;
}

interface QueueItem {
  req: QueuedRequest;
  trigger: string;
  waiters: Waiter[];
}

export interface ManagerStatus {
  ready: boolean;
  healthy: boolean;
  state: ManagerState;
  active: (GenerationInfo & { attempt: number | null; key: string | null }) | null;
  building: { attempt: number; trigger: string; storeVersion: string | null; phase: string; since: string } | null;
  queued: number;
  reloading: boolean;
  aspired: { ok: true; storeVersion: string | null; model: string; key: string; resolvedAt: string; unlistedFiles: string[] } | { ok: false; code: string; message: string } | null;
  waiting: { code: string; message: string; files: string[]; since: string; lastSeen: string } | null;
  previous: { storeVersion: string | null; model: string } | null;
  pinnedAway: string | null;
  lastError: ReloadAttempt | null;
  lastSuccess: ReloadAttempt | null;
  acceptance: AcceptanceStatus | null;
  replay: (ReplayResult & { attempt: number }) | null;
  watcher: { errors: number; lastProblem: { code: string; message: string; at: string } | null };
  history: ReloadAttempt[];
}

/**
 * The last acceptance verdict (local acceptance.json or a shared version's questions): passed with
 * its result, or refused with its code (the recall figures too when the questions ran).
 */
export type AcceptanceStatus = Partial<AcceptanceResult> & { attempt: number; storeVersion: string | null; passed: boolean; code: string | null };

/** Codes that are an acceptance verdict on a version (shown under `acceptance` besides `lastError`). */
const ACCEPTANCE_CODES: ReadonlySet<string> = new Set(['RAG_STORE_ACCEPTANCE_FAILED', 'RAG_STORE_ACCEPTANCE_INVALID', 'RAG_SHARED_ACCEPTANCE_MISSING', 'RAG_SHARED_ACCEPTANCE_MISMATCH']);

/** The version a spec names: a local version folder, or the shared pointer's version. */
function specVersion(spec: AspiredSpec): string | null {
  return spec.store?.version ?? spec.remote?.version ?? null;
}

/**
 * The manager (TF Serving's AspiredVersionsManager, cut to one servable): one queue of
 * requests (watcher refreshes, admin reloads, rollbacks), one explicit state machine, the pure
 * policy deciding each step, the loader building standbys. The active generation is a single
 * reference: `acquire()` reads it once, so a request never sees two generations. At most two
 * generations exist at once (the next build waits for the previous retiree to be disposed).
 */
export class ReloadManager extends EventEmitter {
  private active: Generation | null = null;
  private activeSpec: AspiredSpec | null = null;
  private activeAttempt: number | null = null;
  private previousSpec: AspiredSpec | null = null;
  private retiring: Promise<void> = Promise.resolve();
  private readonly queue: QueueItem[] = [];
  private pumping: Promise<void> | null = null;
  private readonly sm: StateMachine<ManagerState> = managerMachine();
  private readonly history: ReloadHistory;
  private genCounter = 0;
  private pinnedAwayKey: string | null = null;
  private pinnedAwayVersion: string | null = null;
  private lastRejectedKey: string | null = null;
  private buildAbort: AbortController | null = null;
  private buildingInfo: ManagerStatus['building'] = null;
  private aspiredInfo: ManagerStatus['aspired'] = null;
  private waitingInfo: ManagerStatus['waiting'] = null;
  private acceptanceInfo: ManagerStatus['acceptance'] = null;
  private replayInfo: ManagerStatus['replay'] = null;
  private readonly watchInfo: ManagerStatus['watcher'] = { errors: 0, lastProblem: null };
  private readonly recentQuestions = new Set<string>();
  private closed = false;
  private closePromise: Promise<void> | undefined;
  private readonly loader: Loader;
  private readonly source: SourceFn;
  private readonly respec: RespecFn;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    deps: { loader?: Loader; source?: SourceFn; respec?: RespecFn } = {},
  ) {
    super();
    this.setMaxListeners(1000);
    this.history = new ReloadHistory(config.reloadHistory);
    this.loader = deps.loader ?? new GenerationLoader(config, logger, chromaStoreOpener(config, logger));
    this.source = deps.source ?? ((signal) => resolveAspired(config, signal));
    this.respec = deps.respec ?? resolveAgain;
  }

  get current(): Generation | null {
    return this.active;
  }

  /** A reload is being resolved or built, or waits in the queue. */
  get reloading(): boolean {
    return this.sm.state === 'building' || this.sm.state === 'resolving' || this.queue.length > 0;
  }

  get state(): ManagerState {
    return this.sm.state;
  }

  /** A generation serves and its store answers heartbeats. */
  get healthy(): boolean {
    const gen = this.active;
    return gen !== null && gen.store.server?.healthy !== false;
  }

  /** The active generation with a lease, or 503 (not ready, or its store is hung). One read of one reference. */
  acquire(): Lease {
    const gen = this.active;
    if (!gen) {
      const err = this.history.lastError?.error;
      throw new RagError('RAG_NOT_READY', err ? `no generation is serving yet: ${err.message}` : 'no generation is serving yet');
    }
    if (gen.store.server && !gen.store.server.healthy) {
      throw new RagError('RAG_STORE_UNHEALTHY', `the store's Chroma process is not answering (${gen.store.server.state}); it is being restarted`);
    }
    return gen.acquire();
  }

  /** Build and activate the first generation (start-up). Throws when it cannot. */
  async start(): Promise<Generation> {
    await this.reload('startup', { force: true });
    if (!this.active) {
      const err = this.history.lastError?.error ?? this.waitingInfo;
      throw new RagError((err?.code as never) ?? 'RAG_RELOAD_FAILED', err?.message ?? 'the first generation could not be built');
    }
    return this.active;
  }

  /** A watcher problem, shown in the status and counted (never thrown). */
  noteWatchProblem(problem: { code: string; message: string; at: string }): void {
    this.watchInfo.errors++;
    this.watchInfo.lastProblem = problem;
    this.metrics.reloads.inc({ outcome: 'watch_problem', code: problem.code });
    this.emitEvent({ type: ReloadEvents.watchProblem, at: problem.at, detail: problem });
  }

  /** The newest attempt that built this store version (not an `unchanged` one), from the kept history; null when none is kept. */
  attemptFor(storeVersion: string): ReloadAttempt | null {
    return this.history.list().find((a) => a.storeVersion === storeVersion && a.outcome !== 'unchanged') ?? null;
  }

  /**
   * Ask for a refresh; resolves with the attempt that handled it. Refreshes queued behind a
   * running build merge into one, which resolves the folders when it runs (the newest wins).
   */
  reload(trigger: string, options: { force?: boolean } = {}): Promise<ReloadAttempt | null> {
    if (this.closed) return Promise.resolve(null);
    if (options.force) {
      this.pinnedAwayKey = null;
      this.pinnedAwayVersion = null;
    }
    return this.submit({ kind: 'refresh', force: options.force ?? false }, trigger);
  }

  /** Go back to the previous good generation's files (through the same queue). */
  async rollback(): Promise<ReloadAttempt> {
    if (this.closed) throw new RagError('RAG_SHUTTING_DOWN', 'the service is shutting down');
    const a = await this.submit({ kind: 'rollback' }, 'rollback');
    return a!;
  }

  private submit(req: QueuedRequest, trigger: string): Promise<ReloadAttempt | null> {
    return new Promise<ReloadAttempt | null>((resolve, reject) => {
      const waiter = { resolve, reject };
      const { queue, mergedInto } = enqueue(
        this.queue.map((q) => q.req),
        req,
      );
      if (mergedInto < this.queue.length) {
        const item = this.queue[mergedInto]!;
        item.req = queue[mergedInto]!;
        item.waiters.push(waiter);
      } else {
        this.queue.push({ req, trigger, waiters: [waiter] });
      }
      this.pump();
    });
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = this.runQueue()
      .catch((err: unknown) => this.logger.error({ err }, 'reload queue crashed'))
      .finally(() => {
        this.pumping = null;
        if (this.queue.length && !this.closed) this.pump();
      });
  }

  private async runQueue(): Promise<void> {
    while (this.queue.length && !this.closed) {
      const item = this.queue.shift()!;
      let result: ReloadAttempt | null = null;
      try {
        result = await this.handle(item);
        for (const w of item.waiters) w.resolve(result);
      } catch (err) {
        for (const w of item.waiters) w.reject(err);
      }
    }
    for (const item of this.queue.splice(0)) for (const w of item.waiters) w.resolve(null);
  }

  private async handle(item: QueueItem): Promise<ReloadAttempt | null> {
    const t0 = performance.now();
    const startedAt = new Date().toISOString();
    let aspired: AspiredSpec | null = null;
    let view: AspiredView | null = null;
    let resolveError: RagError | null = null;
    if (item.req.kind === 'refresh') {
      this.sm.transition('resolving');
      try {
        aspired = await this.source();
        view = { ok: true, key: aspired.key };
        this.aspiredInfo = {
          ok: true,
          storeVersion: specVersion(aspired),
          model: aspired.model.name,
          key: aspired.key,
          resolvedAt: aspired.resolvedAt,
          unlistedFiles: aspired.store?.unlisted.slice(0, 50) ?? [],
        };
      } catch (err) {
        resolveError = toRagError(err, 'RAG_RELOAD_FAILED');
        view = { ok: false, code: resolveError.code, message: resolveError.message, waiting: err instanceof WriterActiveError };
        this.aspiredInfo = { ok: false, code: resolveError.code, message: resolveError.message };
      }
      if (this.closed) return null;
      this.sm.transition('idle');
    }
    const action = nextAction({
      closed: this.closed,
      building: this.sm.state === 'building',
      request: item.req,
      activeKey: this.activeSpec?.key ?? null,
      aspired: view,
      pinnedAwayKey: this.pinnedAwayKey,
      lastRejectedKey: this.lastRejectedKey,
      previousKey: this.previousSpec?.key ?? null,
    });
    const base = { trigger: item.trigger, startedAt };
    const elapsed = () => Math.round(performance.now() - t0);
    switch (action.type) {
      case 'none':
      case 'wait': // cannot happen inside the queue (builds are awaited), kept for the policy's completeness
        return null;
      case 'no-previous':
        throw new RagError('RAG_RELOAD_NO_PREVIOUS', 'there is no previous generation to roll back to');
      case 'unresolved': {
        const e = resolveError!;
        if (action.waiting) {
          const now = new Date().toISOString();
          const files = e instanceof WriterActiveError ? e.files : [];
          const same = this.waitingInfo?.message === e.message;
          this.waitingInfo = { code: e.code, message: e.message, files, since: same ? this.waitingInfo!.since : now, lastSeen: now };
          if (same && this.history.latest?.outcome === 'waiting') return this.history.latest;
          this.logger.warn({ code: e.code, err: e.message }, 'store is still being written; waiting for the writer to finish');
          return this.record({ ...base, durationMs: elapsed(), outcome: 'waiting', generation: this.active?.id ?? null, storeVersion: null, model: null, error: { code: e.code, message: e.message } }, ReloadEvents.waiting);
        }
        this.waitingInfo = null;
        const last = this.history.latest;
        if (last?.outcome === 'rejected' && last.error?.code === e.code && last.error.message === e.message && item.req.kind === 'refresh' && !item.req.force) return last;
        this.logger.warn({ code: e.code, err: e.message, trigger: item.trigger }, 'update rejected; the current generation keeps serving');
        return this.record({ ...base, durationMs: elapsed(), outcome: 'rejected', generation: this.active?.id ?? null, storeVersion: null, model: null, error: { code: e.code, message: e.message } }, ReloadEvents.rejected);
      }
      case 'unchanged': {
        this.waitingInfo = null;
        if (action.reason === 'rejected-before') return this.history.lastError;
        if (action.reason === 'serving') this.history.clearError();
        return this.record(
          {
            ...base,
            durationMs: elapsed(),
            outcome: 'unchanged',
            reason: action.reason === 'pinned' ? `version ${this.pinnedAwayVersion} was rolled back from; publish something new or force a reload` : 'the folders hold what is served',
            generation: this.active?.id ?? null,
            storeVersion: (aspired ? specVersion(aspired) : null),
            model: aspired?.model.name ?? null,
            key: aspired?.key ?? null,
            error: null,
          },
          ReloadEvents.unchanged,
        );
      }
      case 'build':
        this.waitingInfo = null;
        return this.build(aspired!, item.trigger, startedAt, t0, 'accepted');
      case 'rollback': {
        const prev = this.previousSpec!;
        let spec: AspiredSpec;
        try {
          spec = await this.respec(prev);
        } catch (err) {
          const e = toRagError(err, 'RAG_RELOAD_NO_PREVIOUS');
          throw e.code === 'RAG_RELOAD_NO_PREVIOUS' ? e : new RagError('RAG_RELOAD_NO_PREVIOUS', `the previous generation cannot be rebuilt: ${e.message}`, { cause: e });
        }
        const from = this.activeSpec;
        const attempt = await this.build(spec, 'rollback', startedAt, t0, 'rolled_back');
        if (attempt.outcome === 'rolled_back') {
          this.pinnedAwayKey = from?.key ?? null;
          this.pinnedAwayVersion = from?.store?.version ?? null;
          this.previousSpec = null;
        }
        return attempt;
      }
    }
  }

  private record(attempt: Omit<ReloadAttempt, 'id'>, type: ReloadEventName, generation?: GenerationInfo): ReloadAttempt {
    const full = this.history.add(attempt);
    this.metrics.reloads.inc({ outcome: full.outcome, code: full.error?.code ?? '' });
    this.metrics.reloadDuration.observe({ outcome: full.outcome }, full.durationMs / 1000);
    this.emitEvent({ type, at: new Date().toISOString(), attempt: full, ...(generation ? { generation } : {}) });
    return full;
  }

  private emitEvent(e: ReloadEvent): void {
    try {
      this.emit('event', e);
    } catch (err) {
      this.logger.error({ err }, 'reload event listener threw');
    }
  }

  /** Build a standby with the loader, then swap it in. A started build is never superseded. */
  private async build(spec: AspiredSpec, trigger: string, startedAt: string, t0: number, success: 'accepted' | 'rolled_back'): Promise<ReloadAttempt> {
    // At most two generations: wait until the previous retiree is gone before building.
    await this.retiring;
    if (this.closed) throw new RagError('RAG_SHUTTING_DOWN', 'the service is shutting down');
    this.sm.transition('building');
    const attemptId = this.history.lastId + 1;
    const ctl = new AbortController();
    this.buildAbort = ctl;
    this.buildingInfo = { attempt: attemptId, trigger, storeVersion: specVersion(spec), phase: 'starting', since: new Date().toISOString() };
    this.emitEvent({ type: ReloadEvents.started, at: startedAt, detail: { storeVersion: specVersion(spec), trigger } });
    const modelLabel = `${spec.model.name}@${spec.model.fingerprint.slice(0, 12)}`;
    try {
      const result = await this.loader.load({
        spec,
        active: this.active,
        activeModelFingerprint: this.activeSpec?.model.fingerprint ?? null,
        replayQuestions: this.config.reloadReplayN > 0 ? [...this.recentQuestions].slice(-this.config.reloadReplayN) : [],
        generationId: `g${++this.genCounter}`,
        signal: ctl.signal,
        onPhase: (phase) => {
          if (this.buildingInfo) this.buildingInfo.phase = phase;
        },
      });
      const gen = result.generation;
      if (this.closed) {
        await gen.dispose();
        throw new RagError('RAG_RELOAD_CANCELLED', 'the service is shutting down');
      }
      this.sm.transition('swapping');
      this.swap(gen, spec);
      this.activeAttempt = attemptId;
      this.lastRejectedKey = null;
      this.sm.transition('idle');
      const attempt = this.record(
        { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome: success, generation: gen.id, storeVersion: gen.store.version, model: gen.model.id, key: spec.key, error: null, phases: result.phases },
        success === 'rolled_back' ? ReloadEvents.rolledBack : ReloadEvents.accepted,
        gen.info(),
      );
      this.acceptanceInfo = result.acceptance ? { attempt: attempt.id, storeVersion: gen.store.version, passed: true, code: null, ...result.acceptance } : null;
      if (result.replay) this.replayInfo = { attempt: attempt.id, ...result.replay };
      this.logger.info({ generation: gen.id, store: gen.store.version, model: gen.model.id, trigger, ms: attempt.durationMs, phases: result.phases }, 'generation swapped in');
      return attempt;
    } catch (err) {
      let e = toRagError(err, 'RAG_RELOAD_FAILED');
      const servedVersion = this.activeSpec?.store?.version;
      if (
        (e.code === 'RAG_STORE_CHECKSUM_MISMATCH' || e.code === 'RAG_STORE_FILE_MISSING') &&
        spec.store?.kind === 'versioned' &&
        servedVersion === spec.store.version
      ) {
        e = new RagError(
          'RAG_STORE_PUBLISHED_MODIFIED',
          `version folder ${spec.store.version}, which is being served, was modified after it was published (${e.message}). ` +
            'Published versions are immutable: publish a new version folder (npm run ingest) and point CURRENT at it. The service keeps serving its own snapshot of ' +
            `${spec.store.version}`,
          { cause: e },
        );
      }
      if (!this.closed) this.sm.transition('idle');
      if (e.code === 'RAG_STORE_WRITE_IN_PROGRESS') {
        // The files changed under the copy: a writer is still at work. Not a verdict on the content
        // (the next settle retries); shown under `waiting` until it stops.
        const now = new Date().toISOString();
        this.waitingInfo = { code: e.code, message: e.message, files: [], since: this.waitingInfo?.since ?? now, lastSeen: now };
        this.logger.warn({ code: e.code, err: e.message, trigger }, 'store changed while it was copied; waiting for the writer to finish');
        return this.record(
          { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome: 'waiting', generation: this.active?.id ?? null, storeVersion: specVersion(spec), model: modelLabel, key: spec.key, error: { code: e.code, message: e.message } },
          ReloadEvents.waiting,
        );
      }
      if (!this.closed) this.lastRejectedKey = spec.key;
      this.logger.warn({ code: e.code, err: e.message, trigger }, 'reload rejected; the current generation keeps serving');
      const attempt = this.record(
        { trigger, startedAt, durationMs: Math.round(performance.now() - t0), outcome: 'rejected', generation: this.active?.id ?? null, storeVersion: specVersion(spec), model: modelLabel, key: spec.key, error: { code: e.code, message: e.message } },
        ReloadEvents.rejected,
      );
      if (ACCEPTANCE_CODES.has(e.code)) {
        const ran = (e.details?.acceptance ?? {}) as Partial<AcceptanceResult>;
        this.acceptanceInfo = { attempt: attempt.id, storeVersion: specVersion(spec), passed: false, code: e.code, ...ran };
      }
      return attempt;
    } finally {
      this.buildAbort = null;
      this.buildingInfo = null;
    }
  }

  /** The swap: one reference assignment. The old generation drains, then is disposed. */
  private swap(next: Generation, spec: AspiredSpec): void {
    const old = this.active;
    next.activate();
    next.onQuestion = (q) => this.noteQuestion(q);
    next.store.server?.on(ChromaServerEvents.restarted, () => {
      this.metrics.chromaRestarts.inc();
      this.emitEvent({ type: ReloadEvents.chromaRestarted, at: new Date().toISOString(), generation: next.info() });
    });
    next.store.server?.on(ChromaServerEvents.unhealthy, (detail: Record<string, unknown>) => {
      this.emitEvent({ type: ReloadEvents.chromaUnhealthy, at: new Date().toISOString(), generation: next.info(), detail });
    });
    this.active = next;
    if (this.activeSpec) this.previousSpec = this.activeSpec;
    this.activeSpec = spec;
    this.metrics.generationInfo.reset();
    this.metrics.generationInfo.set({ generation: next.id, model: next.model.id, store_version: next.store.version }, 1);
    if (old) this.retiring = this.retire(old);
    this.metrics.generationsLive.set(old ? 2 : 1);
  }

  private noteQuestion(q: string): void {
    const n = this.config.reloadReplayN;
    if (n <= 0 || q === 'probe query for validation') return;
    this.recentQuestions.delete(q);
    this.recentQuestions.add(q);
    while (this.recentQuestions.size > n) this.recentQuestions.delete(this.recentQuestions.values().next().value!);
  }

  private async retire(old: Generation): Promise<void> {
    old.onQuestion = null;
    const drained = await old.drain(this.config.drainTimeoutMs);
    if (!drained) this.logger.warn({ generation: old.id, inflight: old.inflight }, 'drain timeout; disposing with requests in flight');
    await old.dispose().catch((err: unknown) => this.logger.error({ err, generation: old.id }, 'dispose failed'));
    this.metrics.generationsLive.set(this.active ? 1 : 0);
    this.emitEvent({ type: ReloadEvents.retired, at: new Date().toISOString(), generation: old.info() });
  }

  status(): ManagerStatus {
    const gen = this.active;
    return {
      ready: gen !== null,
      healthy: this.healthy,
      state: this.sm.state,
      active: gen ? { ...gen.info(), attempt: this.activeAttempt, key: this.activeSpec?.key ?? null } : null,
      building: this.buildingInfo ? { ...this.buildingInfo } : null,
      queued: this.queue.length,
      reloading: this.reloading,
      aspired: this.aspiredInfo,
      waiting: this.waitingInfo,
      previous: this.previousSpec ? { storeVersion: specVersion(this.previousSpec), model: this.previousSpec.model.name } : null,
      pinnedAway: this.pinnedAwayVersion,
      lastError: this.history.lastError,
      lastSuccess: this.history.lastSuccess,
      acceptance: this.acceptanceInfo,
      replay: this.replayInfo,
      watcher: { ...this.watchInfo },
      history: this.history.list(),
    };
  }

  /** Stop reloading (a build in flight is cancelled), drain and dispose every generation. Idempotent. */
  close(drainTimeoutMs = this.config.drainTimeoutMs): Promise<void> {
    this.closePromise ??= (async () => {
      this.closed = true;
      this.sm.transition('closing');
      this.buildAbort?.abort(new RagError('RAG_RELOAD_CANCELLED', 'the service is shutting down'));
      await this.pumping;
      // The cancelled build's phases stop at their next abort check and remove what they made (a
      // half snapshot): wait for that, so nothing is left or written in RUNTIME_DIR after a stop.
      if (this.loader.settled && !(await this.loader.settled(drainTimeoutMs))) {
        this.logger.warn({ ms: drainTimeoutMs }, 'a cancelled build was still finishing when the service stopped');
      }
      await this.retiring;
      const gen = this.active;
      this.active = null;
      if (gen) {
        await gen.drain(drainTimeoutMs);
        await gen.dispose();
      }
      this.metrics.generationsLive.set(0);
      this.sm.transition('closed');
    })();
    return this.closePromise;
  }
}
