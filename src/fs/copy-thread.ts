import type { FileHandle } from 'node:fs/promises';
import { RagError } from '../errors.js';
import { startNicedThread, type NicedThread } from '../niced-thread.js';
import { workerScript } from '../worker-script.js';
import type { CopyReply, CopyRequest } from './copy-worker.js';

/** Niceness of the file-copy thread: a snapshot's copying yields CPU to requests, like the rest of a swap's build. */
export const COPY_NICE = 19;
/** The thread ends after this long without work (started again by the next copy). */
export const COPY_IDLE_MS = 30_000;
/** After a cancel, a copy still unanswered this long is given up (its thread is stuck in a read or write). */
export const COPY_CANCEL_GRACE_MS = 2_000;

/** A reply of the thread without its request id. */
export type CopyResult = CopyReply extends infer R ? (R extends CopyReply ? Omit<R, 'id'> : never) : never;

interface Waiting {
  resolve: (r: CopyResult) => void;
  reject: (err: unknown) => void;
}

/**
 * The one thread that copies snapshot files (copy-worker.ts): blocking reads, writes and sha256
 * there, so a swap's copying costs the event loop one message per file instead of the hashing and
 * a round trip per block, which under load queued behind requests (a 19 MB snapshot took
 * 400-800 ms beside a saturating load, 40-90 ms idle). Started on the first copy, unreferenced
 * (it never keeps the process alive), ended after COPY_IDLE_MS without work. A thread that dies
 * fails the copies waiting on it; the next copy starts a new one.
 */
export class CopyThread {
  private worker: NicedThread | null = null;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private idle: NodeJS.Timeout | null = null;
  /**
   * Handles of copies given up while their thread was stuck in a read or write: never closed, so
   * their descriptor numbers are never reused under that thread (it might still write).
   */
  private readonly quarantined: FileHandle[] = [];

  constructor(private readonly options: { idleMs: number; cancelGraceMs: number; nice: number } = { idleMs: COPY_IDLE_MS, cancelGraceMs: COPY_CANCEL_GRACE_MS, nice: COPY_NICE }) {}

  /** The running thread's id, or null (tests). */
  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  private start(): NicedThread {
    // Born niced (niced-thread.ts): its start yields CPU to requests too.
    const script = workerScript(import.meta.url, 'copy-worker', 'RAG_INTERNAL');
    const worker = startNicedThread(script, { nice: this.options.nice }, this.options.nice);
    worker.unref();
    worker.on('message', (reply: CopyReply) => {
      const w = this.waiting.get(reply.id);
      if (!w) return;
      this.waiting.delete(reply.id);
      const { id: _id, ...result } = reply;
      w.resolve(result);
      // Idle, the thread does not keep the process alive; a copy someone awaits does (a CLI has nothing else to).
      if (this.waiting.size === 0) worker.unref();
      this.idleCheck();
    });
    const gone = (why: string) => {
      if (this.worker !== worker) return;
      this.drop(new RagError('RAG_INTERNAL', `the file-copy thread ${why}`));
    };
    worker.once('error', (err) => gone(`failed: ${err.message}`));
    worker.once('exit', (code) => gone(`exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  /** Stop using the current thread: its waiting copies fail with `err`. */
  private drop(err: unknown): void {
    const worker = this.worker;
    this.worker = null;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(err);
    void worker?.terminate();
  }

  private idleCheck(): void {
    if (this.waiting.size > 0 || !this.worker) return;
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => {
      if (this.waiting.size === 0) this.drop(new RagError('RAG_INTERNAL', 'the file-copy thread ended'));
    }, this.options.idleMs);
    this.idle.unref();
  }

  /**
   * Copy `src` into `dst` (both opened by the caller, who closes them once this settles; a null
   * `dst`: only hash `src`). A cancel
   * (`signal`) stops the copy at its next 1 MiB block ({ aborted: true }); if the thread does not
   * answer within COPY_CANCEL_GRACE_MS it is stuck in the file system: it is given up, the handles
   * are kept open for good, and the copy rejects with the signal's reason.
   */
  copy(src: FileHandle, dst: FileHandle | null, signal?: AbortSignal): Promise<CopyResult> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const abort = new Int32Array(new SharedArrayBuffer(4));
    return new Promise<CopyResult>((resolve, reject) => {
      let stuck: NodeJS.Timeout | null = null;
      const done = () => {
        signal?.removeEventListener('abort', onAbort);
        if (stuck) clearTimeout(stuck);
      };
      const onAbort = () => {
        Atomics.store(abort, 0, 1);
        stuck = setTimeout(() => {
          if (!this.waiting.has(id)) return;
          this.quarantined.push(src, ...(dst ? [dst] : []));
          this.waiting.delete(id);
          if (this.worker === worker) this.drop(new RagError('RAG_RELOAD_CANCELLED', 'the file-copy thread was stuck and was replaced'));
          reject(new RagError('RAG_RELOAD_CANCELLED', `a cancelled copy did not stop within ${this.options.cancelGraceMs} ms (the file system does not answer); its files stay open`));
        }, this.options.cancelGraceMs);
        stuck.unref();
      };
      this.waiting.set(id, {
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
      worker.ref();
      worker.postMessage({ id, src: src.fd, dst: dst ? dst.fd : -1, abort } satisfies CopyRequest);
    });
  }

  /** Whether a handle was kept open for a stuck copy (the caller must not close it). */
  keptOpen(fh: FileHandle): boolean {
    return this.quarantined.includes(fh);
  }
}

/** The service's file-copy thread. */
export const copyThread = new CopyThread();
