import type { EmbeddingModel } from './model-loader.js';

export interface BatcherOptions {
  maxBatch: number;
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
 * Coalesces concurrent query texts into one model call (bounded size and wait). One batcher
 * belongs to one model, so a generation swap never mixes models in a batch.
 */
export class EmbeddingBatcher {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly model: EmbeddingModel,
    private readonly options: BatcherOptions,
  ) {}

  embed(text: string): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      this.queue.push({ text, resolve, reject });
      if (this.queue.length >= this.options.maxBatch) this.flush();
      else if (!this.timer) {
        if (this.options.maxWaitMs <= 0) queueMicrotask(() => this.flush());
        else this.timer = setTimeout(() => this.flush(), this.options.maxWaitMs);
      }
    });
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.splice(0, this.options.maxBatch);
    if (this.queue.length > 0) this.timer = setTimeout(() => this.flush(), 0);
    if (batch.length === 0) return;
    this.options.onBatch?.(batch.length);
    this.model.embedBatch(batch.map((p) => p.text)).then(
      (vectors) => batch.forEach((p, i) => p.resolve(vectors[i]!)),
      (err) => batch.forEach((p) => p.reject(err)),
    );
  }
}
