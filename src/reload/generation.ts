import { RagError } from '../errors.js';
import { EmbeddingBatcher } from '../embeddings/batcher.js';
import { ModelEmbeddings } from '../embeddings/model-embeddings.js';
import type { EmbeddingModel } from '../embeddings/model-loader.js';
import type { BackendInfo } from '../store/retrieval-backend.js';
import type { OpenedStore } from '../store/store-version.js';
import { harnessMachine, type HarnessState, type StateMachine } from './state-machine.js';

/** Query embeddings that also tell the manager which questions were asked (for the replay). */
class ObservedEmbeddings extends ModelEmbeddings {
  onQuestion: ((q: string) => void) | null = null;
  override async embedQuery(text: string): Promise<number[]> {
    this.onQuestion?.(text);
    return super.embedQuery(text);
  }
}

const publicState: Record<HarnessState, 'standby' | 'active' | 'draining' | 'disposed'> = {
  new: 'standby',
  loading: 'standby',
  ready: 'standby',
  serving: 'active',
  quiescing: 'draining',
  disabled: 'disposed',
  error: 'disposed',
};

/** A model shared by consecutive generations (a store-only update keeps the loaded model). */
export class SharedModel {
  private refs = 0;
  constructor(readonly model: EmbeddingModel) {}
  retain(): this {
    this.refs++;
    return this;
  }
  async release(): Promise<void> {
    if (--this.refs <= 0) await this.model.dispose();
  }
}

export interface GenerationInfo {
  id: string;
  state: Generation['state'];
  createdAt: string;
  inflight: number;
  model: { name: string; id: string; dimension: number; dtype: string; loadedAt: string };
  store: { version: string; kind: string; collection: string; count: number; dimension: number; createdAt: string | null; keywordIndex: { origin: string; documents: number; searchedOn: 'event-loop' | 'thread' }; backend: BackendInfo };
}

export interface Lease {
  readonly generation: Generation;
  release(): void;
}

/**
 * Generation = one embedding model + one store version, validated together. Requests acquire
 * it at their start and release it when their response ends; it is disposed only once it has
 * been retired and the last lease is released (or the drain timeout passes).
 */
export class Generation {
  readonly createdAt = new Date().toISOString();
  readonly batcher: EmbeddingBatcher;
  /** Build time per phase (ms), filled in by the reload manager. */
  phases: Record<string, number> = {};
  readonly embeddings: ObservedEmbeddings;
  /** Guarded life cycle (an illegal transition throws). */
  readonly harness: StateMachine<HarnessState>;
  private refs = 0;
  private drainWaiters: Array<() => void> = [];
  private disposePromise: Promise<void> | undefined;

  constructor(
    readonly id: string,
    private readonly shared: SharedModel,
    readonly store: OpenedStore,
    batch: { maxBatch: number; maxWaitMs: number; onBatch?: (n: number) => void },
  ) {
    shared.retain();
    this.harness = harnessMachine(id);
    this.harness.transition('loading');
    this.harness.transition('ready'); // built and validated by the loader before construction
    this.batcher = new EmbeddingBatcher(shared.model, batch);
    this.embeddings = new ObservedEmbeddings(shared.model, this.batcher);
  }

  /** Called with each question this generation embeds while it serves. */
  set onQuestion(fn: ((q: string) => void) | null) {
    this.embeddings.onQuestion = fn;
  }

  get model(): EmbeddingModel {
    return this.shared.model;
  }
  get sharedModel(): SharedModel {
    return this.shared;
  }
  get state(): 'standby' | 'active' | 'draining' | 'disposed' {
    return publicState[this.harness.state];
  }
  get inflight(): number {
    return this.refs;
  }

  activate(): void {
    this.harness.transition('serving');
    this.store.store.activated?.();
  }

  acquire(): Lease {
    if (this.harness.state === 'disabled') throw new RagError('RAG_NOT_READY', `generation ${this.id} is disposed`);
    this.refs++;
    let released = false;
    return {
      generation: this,
      release: () => {
        if (released) return;
        released = true;
        this.refs--;
        if (this.refs === 0) for (const w of this.drainWaiters.splice(0)) w();
      },
    };
  }

  /** Stop taking new work; resolves true when in-flight requests finished, false on timeout. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.harness.state === 'serving') this.harness.transition('quiescing');
    if (this.refs === 0) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Idempotent: stops the Chroma child and releases the model (if no other generation holds it). */
  dispose(): Promise<void> {
    this.disposePromise ??= (async () => {
      if (this.harness.state === 'serving') this.harness.transition('quiescing');
      if (this.harness.state !== 'disabled') this.harness.transition('disabled');
      this.embeddings.onQuestion = null;
      await this.store.dispose();
      await this.shared.release();
    })();
    return this.disposePromise;
  }

  info(): GenerationInfo {
    const m = this.shared.model;
    return {
      id: this.id,
      state: this.state,
      createdAt: this.createdAt,
      inflight: this.refs,
      model: { name: m.name, id: m.id, dimension: m.dimension, dtype: m.dtype, loadedAt: m.loadedAt },
      store: {
        version: this.store.version,
        kind: this.store.kind,
        collection: this.store.store.name,
        count: this.store.count,
        dimension: this.store.dimension,
        createdAt: this.store.manifest?.createdAt ?? null,
        keywordIndex: { origin: this.store.keyword.origin, documents: this.store.keyword.size, searchedOn: this.store.keyword.searchedOn },
        backend: this.store.store.describe(),
      },
    };
  }
}
