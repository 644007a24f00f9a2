import { EventEmitter } from 'node:events';
import { MessageChannel, parentPort, Worker, type MessagePort, type ResourceLimits, type Transferable } from 'node:worker_threads';
import { RagError } from './errors.js';
import type { NicedThreadReply, NicedThreadRequest } from './niced-thread-worker.js';
import { workerScript } from './worker-script.js';

/**
 * Worker threads born at a low priority. A thread renicing itself (thread-nice.ts) has already
 * run its start at the service's priority: Node's bootstrap and the script's imports, ~50-70 ms of
 * CPU per build thread measured per thread from /proc during idle swaps of 3,000 chunks, taken
 * from the threads serving requests at every swap. Linux gives a new thread its creator's
 * niceness, and an unprivileged thread cannot raise its priority again, so the event loop cannot
 * lower its own around `new Worker`. One spawner thread per niceness (niced-thread-worker.ts)
 * lowers its own priority once and creates the threads: they run niced from their first
 * instruction. The event loop talks to each thread through a MessageChannel of its own (messages
 * do not pass through the spawner); the spawner relays the thread's `error` and `exit` and ends it
 * on `terminate()`. The spawner is unreferenced and ends with the process. Where niceness cannot
 * be set (another OS), the threads run at normal priority, as they would without it.
 */

/** The handle of a thread started by startNicedThread: the parts of a Worker its users need. */
export interface NicedThread {
  /** worker_threads threadId of the thread (-1 until the spawner reported its start). */
  readonly threadId: number;
  postMessage(value: unknown, transfer?: readonly Transferable[]): void;
  /** End the thread; resolves with its exit code once it is gone. */
  terminate(): Promise<number>;
  /** The thread no longer keeps the process alive. */
  unref(): void;
  /** The thread keeps the process alive again (e.g. while it works for a caller who awaits it). */
  ref(): void;
  on(event: 'message', listener: (value: any) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'exit', listener: (code: number) => void): this;
  once(event: 'message', listener: (value: any) => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  once(event: 'exit', listener: (code: number) => void): this;
  off(event: 'message' | 'error' | 'exit', listener: (...args: any[]) => void): this;
}

/** The key of workerData under which a niced thread finds its port to the event loop. */
const NICED_PORT = '__nicedPort';

/**
 * The port a worker script talks to the event loop through: its own channel when it was started by
 * startNicedThread, else `parentPort`.
 */
export function threadPort(workerData: unknown): MessagePort {
  const own = (workerData as Record<string, unknown> | null)?.[NICED_PORT] as MessagePort | undefined;
  if (own) return own;
  if (!parentPort) throw new RagError('RAG_INTERNAL', 'a worker script was run outside a worker thread (threadPort)');
  return parentPort;
}

/** A NicedThread as the event loop holds it (exported for tests that watch its messages). */
export class NicedThreadHandle extends EventEmitter implements NicedThread {
  threadId = -1;
  exitCode: number | null = null;
  terminating = false;
  private readonly exited: Promise<number>;
  private markExited!: (code: number) => void;

  constructor(
    readonly id: number,
    private readonly port: MessagePort,
    private readonly spawner: Spawner,
  ) {
    super();
    this.exited = new Promise((resolve) => (this.markExited = resolve));
    port.on('message', (m: unknown) => this.emit('message', m));
  }

  postMessage(value: unknown, transfer?: readonly Transferable[]): void {
    if (this.exitCode === null) this.port.postMessage(value, transfer);
  }

  terminate(): Promise<number> {
    if (this.exitCode === null && !this.terminating) {
      this.terminating = true;
      // Like Worker.terminate(): the process waits for the thread's end once it was asked for.
      this.spawner.hold(+1);
      this.spawner.send({ type: 'terminate', id: this.id });
    }
    return this.exited;
  }

  unref(): void {
    this.port.unref();
  }

  ref(): void {
    if (this.exitCode === null) this.port.ref();
  }

  /** The thread is gone (reported by the spawner, or the spawner itself is gone). */
  gone(code: number): void {
    if (this.exitCode !== null) return;
    this.exitCode = code;
    this.port.close();
    if (this.terminating) this.spawner.hold(-1);
    this.markExited(code);
    this.emit('exit', code);
  }
}

/** One spawner thread (niced-thread-worker.ts) and the threads it started. */
class Spawner {
  private readonly worker: Worker;
  private readonly live = new Map<number, NicedThreadHandle>();
  dead = false;
  /** The spawner's OS thread id, once it reported it (Linux). */
  tid: number | null = null;

  constructor(nice: number) {
    this.worker = new Worker(workerScript(import.meta.url, 'niced-thread-worker', 'RAG_INTERNAL'), { workerData: { nice } });
    this.worker.on('message', (m: NicedThreadReply) => {
      if (m.type === 'spawner') {
        this.tid = m.tid;
        return;
      }
      const h = this.live.get(m.id);
      if (!h) return;
      if (m.type === 'started') h.threadId = m.threadId;
      else if (m.type === 'error') {
        const err = new Error(m.message);
        err.name = m.name;
        if (m.stack) err.stack = m.stack;
        // Like a Worker's, but never thrown for want of a listener: the exit follows.
        if (h.listenerCount('error') > 0) h.emit('error', err);
      } else if (m.type === 'exit') {
        this.live.delete(m.id);
        h.gone(m.code);
      }
    });
    const down = () => {
      this.dead = true;
      for (const h of this.live.values()) h.gone(1);
      this.live.clear();
    };
    this.worker.on('error', down);
    this.worker.on('exit', down);
    this.worker.unref();
  }

  private holds = 0;

  /** Terminations under way keep the process alive until the threads have ended. */
  hold(delta: number): void {
    this.holds += delta;
    if (this.holds === 1 && delta > 0) this.worker.ref();
    else if (this.holds === 0) this.worker.unref();
  }

  send(m: NicedThreadRequest, transfer: Transferable[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  start(script: string, workerData: Record<string, unknown>, id: number, resourceLimits?: ResourceLimits): NicedThreadHandle {
    const { port1, port2 } = new MessageChannel();
    const h = new NicedThreadHandle(id, port1, this);
    this.live.set(id, h);
    try {
      this.send({ type: 'start', id, script, workerData: { ...workerData, [NICED_PORT]: port2 }, ...(resourceLimits ? { resourceLimits } : {}) }, [port2]);
    } catch (err) {
      // workerData that cannot be cloned: no thread, no handle left behind.
      this.live.delete(id);
      port1.close();
      throw err;
    }
    return h;
  }
}

const spawners = new Map<number, Spawner>();
let nextId = 1;

/**
 * Start `script` (a built worker script) on a thread at niceness `nice` from its first instruction.
 * It reads its port with threadPort(workerData); `workerData` must be structured-cloneable;
 * `resourceLimits` as for a Worker (e.g. a build thread's young generation).
 */
export function startNicedThread(script: string, workerData: Record<string, unknown>, nice: number, resourceLimits?: ResourceLimits): NicedThread {
  let spawner = spawners.get(nice);
  if (!spawner || spawner.dead) {
    spawner = new Spawner(nice);
    spawners.set(nice, spawner);
  }
  return spawner.start(script, workerData, nextId++, resourceLimits);
}

/** OS thread ids of the live spawner threads (Linux; diagnostics and tests: they stay niced for the process's life). */
export function nicedSpawnerTids(): number[] {
  return [...spawners.values()].filter((s) => !s.dead && s.tid !== null).map((s) => s.tid!);
}
