import type { EmbeddingModel } from './model-loader.js';

export interface BatcherOptions {
  maxBatch: number;
  /** Upper bound on how long a text waits while the model is busy with an earlier batch. */
  maxWaitMs: number;
  /** Called with each batch size (metrics). */
  onBatch?: (size: number) => void;
}

interface Pending {
  text: string;
  resolve: (v: number[]) => void;
  reject: (e: unknown) => void;
}

/**
 * Coalesces concurrent query texts (embedded with the model's query prompt) into one model call. Adaptive: when the model is idle a text
 * goes at once (texts queued in the same tick share the call), so a lone request never waits;
 * while a call is running, new texts queue and go together when it finishes, when maxBatch is
 * reached, or after maxWaitMs. One batcher belongs to one generation's model, so a generation
 * swap never mixes models in a batch.
 */
export class EmbeddingBatcher {
  private queue: Pending[] = [];
  private inflight = 0;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;

  constructor(
    private readonly model: EmbeddingModel,
    private readonly options: BatcherOptions,
  ) {}

  embed(text: string): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      this.queue.push({ text, resolve, reject });
      if (this.queue.length >= this.options.maxBatch) this.flush();
      else if (this.inflight === 0) this.scheduleSoon();
      else if (!this.timer && this.options.maxWaitMs > 0) this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
    });
  }

  private scheduleSoon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.run(batch);
      if (this.queue.length < this.options.maxBatch) break;
    }
  }

  private run(batch: Pending[]): void {
    this.inflight++;
    this.options.onBatch?.(batch.length);
    this.model
      .embedBatch(batch.map((p) => p.text), 'query')
      .then(
        (vectors) => batch.forEach((p, i) => p.resolve(vectors[i]!)),
        (err) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        this.inflight--;
        if (this.inflight === 0 && this.queue.length > 0) this.flush();
      });
  }
}
