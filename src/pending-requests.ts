/**
 * Requests sent to another thread or process and awaiting an answer by id, each with a deadline:
 * the spawner host client (store/spawner.ts).
 */
export class PendingRequests<T> {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (value: T) => void; reject: (err: unknown) => void; timer: NodeJS.Timeout }>();

  get size(): number {
    return this.waiting.size;
  }

  /**
   * Open a request: `send(id)` posts it. Without an answer within `timeoutMs` it is dropped and
   * rejected with what `onTimeout()` returns (which may also do the caller's bookkeeping).
   */
  open(timeoutMs: number, onTimeout: () => unknown, send: (id: number) => void): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(onTimeout());
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      send(id);
    });
  }

  /** Settle request `id` with its answer; false when it is not waiting (timed out, or never sent). */
  resolve(id: number, value: T): boolean {
    const p = this.take(id);
    p?.resolve(value);
    return p !== undefined;
  }

  /** Fail request `id`; false when it is not waiting. */
  reject(id: number, err: unknown): boolean {
    const p = this.take(id);
    p?.reject(err);
    return p !== undefined;
  }

  /** Fail every waiting request (the other side is gone). */
  rejectAll(err: unknown): void {
    for (const id of [...this.waiting.keys()]) this.reject(id, err);
  }

  private take(id: number) {
    const p = this.waiting.get(id);
    if (!p) return undefined;
    this.waiting.delete(id);
    clearTimeout(p.timer);
    return p;
  }
}
