import type { Config } from '../config.js';
import { RagError } from '../errors.js';
import { loadEmbeddingModel } from '../embeddings/model-loader.js';
import { folderFingerprint } from '../fs/fingerprint.js';
import { throwIfAborted } from '../fs/safe-fs.js';
import type { Logger } from '../observability/logger.js';
import { parseAcceptance } from '../store/acceptance.js';
import { ACCEPTANCE_FILE, describeStore, SQLITE_FILE, storeFingerprintNow, type StoreSpec } from '../store/layout.js';
import { indexCacheKey, SERVING_INDEX_FILE } from '../store/index-cache.js';
import { snapshotStore } from '../store/snapshot.js';
import { chooseBackendKind, openCachedIndex, openChromaSnapshot, openRemoteStore, storeBytes, type OpenedStore } from '../store/store-version.js';
import { Generation, SharedModel } from './generation.js';
import { sharedRegistryFor, type AspiredSpec } from './source.js';
import { dirname } from 'node:path';

/**
 * The loader (TF Serving's Loader): builds and validates one standby generation from an aspired
 * spec, in phases. Every phase has a timeout (RELOAD_PHASE_TIMEOUT_MS) and honours the build's
 * AbortSignal, so a shutdown during a build ends it promptly; whatever a phase made is disposed
 * when a later phase fails. Nothing here touches the active generation except read-only
 * queries for the replay comparison.
 *
 *   model     load the model folder (or share the active one's session when the bytes are the same)
 *   snapshot  copy the store's listed files into a private RUNTIME_DIR folder, verifying sha256
 *   open      StoreOpener: turn the verified snapshot into a retrieval backend (OpenedStore)
 *   validate  dimensions match, a probe query gives finite scores
 *   accept    the store's own acceptance.json questions reach their minimum recall@k
 *   warmup    replay recent questions on the standby; overlap@k with the active generation
 *
 * The `open` phase is the seam for other backends (issue 13, an in-process index: start a
 * Chroma child on the snapshot, page the rows out, build the index, stop the child): provide a
 * StoreOpener that returns an OpenedStore and owns what it started (its dispose() stops it).
 */
export interface StoreOpener {
  readonly name: string;
  /**
   * Open a verified private snapshot (or, with spec null, the remote CHROMA_URL store). Must
   * honour `signal` (stop whatever it started and throw) and must clean up on failure; on
   * success the returned store owns the snapshot folder and deletes it in dispose().
   */
  open(input: { spec: StoreSpec | null; snapshotDir: string | null; signal: AbortSignal; remote?: AspiredSpec['remote'] }): Promise<OpenedStore>;
  /**
   * Optional: open the store without a snapshot from what an earlier load left (the serving index
   * cache), or null to take the snapshot + open path. Must never return a store other than the
   * one `spec` describes.
   */
  openCached?(input: { spec: StoreSpec; signal: AbortSignal }): Promise<OpenedStore | null>;
  /**
   * Optional: the files the snapshot of `spec` copies (the others are checked against the manifest
   * where they are, not copied); undefined: every file. open() gets that partial snapshot and
   * completes it (store/snapshot.ts completeSnapshot) if it needs the other files after all.
   */
  snapshotFiles?(spec: StoreSpec): ((rel: string) => boolean) | undefined;
}

/**
 * The default opener: one supervised Chroma child per snapshot; with SERVE_INDEX_CACHE, a store
 * served in process is opened from the serving index cache when an earlier load of the same
 * verified version left one (store/index-cache.ts).
 */
export function chromaStoreOpener(config: Config, logger: Logger): StoreOpener {
  const inProcessBudget = (spec: StoreSpec) => !config.chromaUrl && chooseBackendKind(storeBytes(spec), config.serveIndexMaxMb) === 'in-process';
  const cacheable = (spec: StoreSpec) => config.serveIndexCache && inProcessBudget(spec);
  const partialSnapshot = (spec: StoreSpec) => spec.manifest?.files[SERVING_INDEX_FILE] !== undefined && inProcessBudget(spec);
  const keyOf = (spec: StoreSpec) => indexCacheKey(spec, spec.manifest?.collection ?? config.collection);
  return {
    name: 'chroma',
    // A version loaded from its serving-index.bin reads nothing else: its Chroma files are checked
    // in place, not copied (~30 MB written and deleted per 10,000-chunk swap).
    snapshotFiles: (spec) => (partialSnapshot(spec) ? (rel) => rel === SERVING_INDEX_FILE || rel === ACCEPTANCE_FILE : undefined),
    openCached: async ({ spec, signal }) => {
      if (!cacheable(spec)) return null;
      const key = await keyOf(spec).catch(() => null);
      if (!key) return null;
      const r = await openCachedIndex(spec, key, { runtimeDir: config.runtimeDir, indexLoadTimeoutMs: config.indexLoadTimeoutMs, signal });
      if (r.opened) {
        logger.info({ store: spec.version, ms: r.opened.openMs }, 'serving index loaded from the cache (no snapshot, no Chroma child)');
        return r.opened;
      }
      if (r.invalid) logger.warn({ code: 'RAG_STORE_INDEX_CACHE_INVALID', store: spec.version, reason: r.reason }, 'serving index cache entry not used; reading the store through Chroma');
      else logger.debug({ store: spec.version, reason: r.reason }, 'serving index cache miss');
      return null;
    },
    open: async ({ spec, snapshotDir, signal, remote }) => {
      if (!spec || !snapshotDir) {
        return openRemoteStore(config.chromaUrl!, remote?.collection ?? config.collection, {
          queryTimeoutMs: config.storeQueryTimeoutMs,
          indexLoadTimeoutMs: config.indexLoadTimeoutMs,
          signal,
          ...(remote ? { version: remote.version } : {}),
        });
      }
      const key = cacheable(spec) ? await keyOf(spec).catch(() => null) : null;
      return openChromaSnapshot(spec, snapshotDir, {
        runtimeDir: config.runtimeDir,
        logger,
        collection: config.collection,
        chromaStartTimeoutMs: config.chromaStartTimeoutMs,
        queryTimeoutMs: config.storeQueryTimeoutMs,
        heartbeatMs: config.chromaHeartbeatMs,
        heartbeatMisses: config.chromaHeartbeatMisses,
        serveIndexMaxMb: config.serveIndexMaxMb,
        indexLoadTimeoutMs: config.indexLoadTimeoutMs,
        loaderStandbyMs: config.loaderStandbyMs,
        buildThreadMaxBuilds: config.buildThreadMaxBuilds,
        signal,
        partialSnapshot: partialSnapshot(spec),
        persistIndex: key
          ? {
              key,
              // The published files are still the ones resolved (and verified by the copy).
              stillSame: async () => (await storeFingerprintNow(spec)) === spec.fingerprint,
            }
          : undefined,
      });
    },
  };
}

export { ACCEPTANCE_FILE };

/** A snapshot's `copy` option, when the opener limits what it copies. */
function copyOnly(copy: ((rel: string) => boolean) | undefined): { copy?: (rel: string) => boolean } {
  return copy ? { copy } : {};
}

export interface AcceptanceResult {
  k: number;
  minRecall: number;
  recall: number;
  questions: number;
  failed: Array<{ question: string; recall: number }>;
}

export interface ReplayResult {
  k: number;
  questions: number;
  /** Mean share of the active's top-k ids the standby also returns (1 = same results). */
  overlapAtK: number | null;
  lowest: Array<{ question: string; overlap: number }>;
}

export interface LoadRequest {
  spec: AspiredSpec;
  /** The active generation, if any: its model is shared when the bytes match; it answers the replay. */
  active: Generation | null;
  activeModelFingerprint: string | null;
  replayQuestions: string[];
  generationId: string;
  signal: AbortSignal;
  onPhase?: (phase: string) => void;
}

export interface LoadResult {
  generation: Generation;
  phases: Record<string, number>;
  acceptance: AcceptanceResult | null;
  replay: ReplayResult | null;
}

export interface Loader {
  load(req: LoadRequest): Promise<LoadResult>;
  /**
   * Resolves once the work of every abandoned phase (a cancelled or timed-out build goes on until
   * its next abort check, then removes what it made) has ended, or after timeoutMs (false then).
   * The manager's close() waits for it, so nothing a build made is left or written after a stop.
   */
  settled?(timeoutMs: number): Promise<boolean>;
}

/**
 * Run one phase with a timeout; a late result of a timed-out phase is disposed, never leaked.
 * `track` gets the abandoned work's end (its late result disposed) when the phase is cancelled.
 */
export async function runPhase<T>(
  name: string,
  timeoutMs: number,
  parent: AbortSignal,
  fn: (signal: AbortSignal) => Promise<T>,
  disposeLate?: (value: T) => Promise<void> | void,
  track?: (late: Promise<unknown>) => void,
): Promise<T> {
  throwIfAborted(parent);
  const ctl = new AbortController();
  const onParent = () => ctl.abort(parent.reason);
  parent.addEventListener('abort', onParent, { once: true });
  const timer = setTimeout(
    () => ctl.abort(new RagError('RAG_RELOAD_TIMEOUT', `build phase "${name}" took longer than ${timeoutMs} ms (RELOAD_PHASE_TIMEOUT_MS); the build was abandoned`)),
    timeoutMs,
  );
  const work = fn(ctl.signal);
  // Removed when the phase ends: what the phase opened keeps its signal (a store's dispose holds its
  // open options), and a listener left on it would hold this phase's closures, and through them the
  // build request and the generation it replaced: every generation would keep the one before alive.
  let onAbort: (() => void) | undefined;
  try {
    return await new Promise<T>((resolve, reject) => {
      onAbort = () => reject(ctl.signal.reason instanceof Error ? ctl.signal.reason : new RagError('RAG_RELOAD_CANCELLED', 'the build was cancelled'));
      if (ctl.signal.aborted) onAbort();
      ctl.signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject);
    });
  } catch (err) {
    if (ctl.signal.aborted) {
      const late = work.then(
        (v) => disposeLate?.(v),
        () => undefined,
      );
      track?.(late);
    }
    throw err;
  } finally {
    clearTimeout(timer);
    parent.removeEventListener('abort', onParent);
    if (onAbort) ctl.signal.removeEventListener('abort', onAbort);
  }
}

function idsOf(hits: Array<{ id: string; metadata: Record<string, unknown> }>): Set<string> {
  const out = new Set<string>();
  for (const h of hits) {
    out.add(h.id);
    if (typeof h.metadata.source === 'string') out.add(h.metadata.source);
  }
  return out;
}

export class GenerationLoader implements Loader {
  /** Abandoned phases' work still running (runPhase's `track`). */
  private readonly late = new Set<Promise<unknown>>();

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly opener: StoreOpener,
  ) {}

  private readonly track = (late: Promise<unknown>): void => {
    const entry: Promise<unknown> = late.catch(() => undefined).finally(() => this.late.delete(entry));
    this.late.add(entry);
  };

  async settled(timeoutMs: number): Promise<boolean> {
    if (this.late.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([Promise.all([...this.late]).then(() => true as const), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  async load(req: LoadRequest): Promise<LoadResult> {
    const { spec, signal } = req;
    const timeout = this.config.reloadPhaseTimeoutMs;
    const phases: Record<string, number> = {};
    const timed = async <T>(name: string, fn: (s: AbortSignal) => Promise<T>, disposeLate?: (v: T) => Promise<void> | void): Promise<T> => {
      req.onPhase?.(name);
      const t0 = performance.now();
      try {
        return await runPhase(name, timeout, signal, fn, disposeLate, this.track);
      } finally {
        phases[name] = Math.round(performance.now() - t0);
      }
    };

    // model: share the loaded session when the active one has the same bytes. The model load
    // (CPU on this thread) and the store's snapshot + open (mostly waiting on the Chroma child and
    // the index worker) do not depend on each other, so they run at the same time; validate needs both.
    const cur = req.active;
    const sharing = !!cur && cur.model.dir === spec.model.dir && req.activeModelFingerprint === spec.model.fingerprint;
    // Resolves to the model retained once for this build (until the generation takes its own reference).
    const modelWork: Promise<SharedModel> = sharing
      ? Promise.resolve(cur!.sharedModel.retain())
      : timed(
          'model',
          async (sig) => {
            const model = await loadEmbeddingModel({
              dir: spec.model.dir,
              dtype: this.config.modelDtype,
              pooling: this.config.pooling,
              factsCacheDir: this.config.runtimeDir,
              onFactsCache: ({ level, msg, reason }) => this.logger[level]({ model: spec.model.dir, reason }, msg),
            });
            // transformers.js reads the published folder itself: it must not have changed while it did.
            const now = await folderFingerprint(spec.model.dir, { root: this.config.modelsDir, signal: sig }).catch(() => null);
            if (!now || now.fingerprint !== spec.model.fingerprint) {
              await model.dispose();
              throw new RagError('RAG_MODEL_WRITE_IN_PROGRESS', `model folder ${spec.model.dir} changed while it was loading (a copy is still in progress); it is retried when the files settle`);
            }
            return new SharedModel(model).retain();
          },
          (m) => m.release(),
        );
    const storeWork = (async (): Promise<OpenedStore> => {
      let snapshotDir: string | null = null;
      try {
        if (spec.store && this.opener.openCached) {
          const s = spec.store;
          const cached = await timed('indexCache', (sig) => this.opener.openCached!({ spec: s, signal: sig }), (o) => o?.dispose());
          if (cached) return cached;
        }
        if (spec.store) {
          const s = spec.store;
          snapshotDir = await timed(
            'snapshot',
            (sig) =>
              snapshotStore(s, {
                runtimeDir: this.config.runtimeDir,
                signal: sig,
                ...copyOnly(this.opener.snapshotFiles?.(s)),
                recheck: async () => (await describeStore(s.kind === 'flat' ? s.dir : dirname(s.dir), s.dir, s.kind, s.kind === 'flat' ? null : s.version)).fingerprint,
              }),
            async (dir) => {
              const { rm } = await import('node:fs/promises');
              await rm(dir, { recursive: true, force: true });
            },
          );
        }
        const snap = snapshotDir;
        const opened = await timed('open', (sig) => this.opener.open({ spec: spec.store, snapshotDir: snap, signal: sig, remote: spec.remote ?? null }), (o) => o.dispose());
        snapshotDir = null; // the opened store owns it now
        return opened;
      } finally {
        if (snapshotDir) {
          const { rm } = await import('node:fs/promises');
          await rm(snapshotDir, { recursive: true, force: true });
        }
      }
    })();
    const [modelResult, storeResult] = await Promise.allSettled([modelWork, storeWork]);
    if (modelResult.status === 'rejected' || storeResult.status === 'rejected') {
      // Whatever the other side made is disposed; the model's error wins (it was checked first before).
      if (storeResult.status === 'fulfilled') await storeResult.value.dispose();
      if (modelResult.status === 'fulfilled') await modelResult.value.release();
      throw modelResult.status === 'rejected' ? modelResult.reason : (storeResult as PromiseRejectedResult).reason;
    }
    const shared = modelResult.value;
    let store: OpenedStore | null = storeResult.value;
    // The open phase's own steps (verify, chromaStart, open, index, stopLoader, ...) as `open.<step>`.
    if (phases.open !== undefined) for (const [step, ms] of Object.entries(store.phases ?? {})) phases[`open.${step}`] = ms;
    try {
      const opened = store;
      await timed('validate', async () => {
        if (opened.dimension !== shared.model.dimension) {
          throw new RagError(
            'RAG_STORE_DIMENSION_MISMATCH',
            `model ${shared.model.name} makes ${shared.model.dimension}-d vectors but store ${opened.version} holds ${opened.dimension}-d vectors; ` +
              'publish a store built with this model (or select the model the store was built with)',
          );
        }
        const [probe] = await shared.model.embedBatch(['probe query for validation']);
        const hits = await opened.store.query(probe!, 1);
        if (hits.length === 0 || !hits.every((h) => Number.isFinite(h.score))) {
          throw new RagError('RAG_STORE_PROBE_FAILED', `a probe query on store ${opened.version} returned ${hits.length ? 'non-finite scores' : 'no results'}`);
        }
      });
      const acceptance = await timed('accept', async (sig) => this.acceptance(opened, shared, spec.remote ?? null, sig));
      const generation = new Generation(req.generationId, shared, opened, {
        maxBatch: this.config.embedBatchMax,
        maxWaitMs: this.config.embedBatchWaitMs,
      });
      let replay: ReplayResult | null = null;
      try {
        replay = await timed('warmup', async (sig) => this.replay(generation, req.active, req.replayQuestions, sig));
      } catch (err) {
        await generation.dispose();
        store = null;
        throw err;
      }
      store = null; // the generation owns it now
      generation.phases = phases;
      return { generation, phases, acceptance, replay };
    } finally {
      await store?.dispose();
      await shared.release();
    }
  }

  /**
   * Where a version's acceptance questions come from: a local version's acceptance.json (covered by
   * its manifest, so it is in the verified snapshot), or a shared version's registry record (checked
   * against the sha256 the version was completed with). null: the version has none.
   */
  private async acceptanceText(opened: OpenedStore, remote: AspiredSpec['remote'] | null): Promise<{ text: string; what: string; label: string } | null> {
    if (remote) {
      if (!remote.acceptanceSha256) return null;
      const registry = await sharedRegistryFor(this.config.chromaUrl!);
      const text = await registry.readAcceptance(remote.name, remote.version, remote.acceptanceSha256);
      return { text, what: `the acceptance questions of ${remote.collection}`, label: 'acceptance questions' };
    }
    if (opened.acceptanceText === null) return null;
    return { text: opened.acceptanceText, what: `${ACCEPTANCE_FILE} of store ${opened.version}`, label: ACCEPTANCE_FILE };
  }

  /** The store's own quality gate, one implementation for local and shared versions: recall@k of its labelled questions. */
  private async acceptance(opened: OpenedStore, shared: SharedModel, remote: AspiredSpec['remote'] | null, signal: AbortSignal): Promise<AcceptanceResult | null> {
    const source = await this.acceptanceText(opened, remote);
    if (!source) return null;
    throwIfAborted(signal);
    const { k, minRecall, questions } = parseAcceptance(source.text, { what: source.what, code: 'RAG_STORE_ACCEPTANCE_INVALID' });
    const failed: AcceptanceResult['failed'] = [];
    let sum = 0;
    const vectors = await shared.model.embedBatch(questions.map((q) => q.question));
    for (const [i, q] of questions.entries()) {
      throwIfAborted(signal);
      const got = idsOf(await opened.store.query(vectors[i]!, k));
      const recall = q.expected.filter((e) => got.has(e)).length / q.expected.length;
      sum += recall;
      if (recall < 1) failed.push({ question: q.question.slice(0, 200), recall });
    }
    const recall = sum / questions.length;
    const result = { k, minRecall, recall: Math.round(recall * 1000) / 1000, questions: questions.length, failed: failed.slice(0, 10) };
    if (recall < minRecall) {
      throw new RagError(
        'RAG_STORE_ACCEPTANCE_FAILED',
        `store ${opened.version} fails its own ${source.label}: recall@${k} ${result.recall} is below the minimum ${minRecall} over ${questions.length} questions`,
        { details: { acceptance: result } },
      );
    }
    return result;
  }

  /** Warm the standby with recent questions and measure how much its answers differ from the active's. */
  private async replay(standby: Generation, active: Generation | null, questions: string[], signal: AbortSignal): Promise<ReplayResult | null> {
    if (questions.length === 0) return null;
    const k = this.config.defaultK;
    const lease = active?.state === 'active' ? active.acquire() : null;
    try {
      let sum = 0;
      let n = 0;
      const per: ReplayResult['lowest'] = [];
      for (const q of questions) {
        throwIfAborted(signal);
        const [v] = await standby.model.embedBatch([q]);
        const mine = await standby.store.store.nearestIds(v!, k);
        if (!lease) continue;
        const [va] = await lease.generation.model.embedBatch([q]);
        const theirs = await lease.generation.store.store.nearestIds(va!, k);
        if (theirs.length === 0) continue;
        const set = new Set(mine.map((h) => h.id));
        const overlap = theirs.filter((h) => set.has(h.id)).length / theirs.length;
        sum += overlap;
        n++;
        per.push({ question: q.slice(0, 200), overlap: Math.round(overlap * 1000) / 1000 });
      }
      per.sort((a, b) => a.overlap - b.overlap);
      return { k, questions: questions.length, overlapAtK: n ? Math.round((sum / n) * 1000) / 1000 : null, lowest: per.slice(0, 5) };
    } finally {
      lease?.release();
    }
  }
}

export { SQLITE_FILE };
