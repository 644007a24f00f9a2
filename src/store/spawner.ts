import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RagError } from '../errors.js';
import { PendingRequests } from '../pending-requests.js';

/**
 * Chroma children are forked by a small helper process (spawner-host.cjs), not by the service.
 *
 * Why: fork() copies the parent's page tables while the calling thread waits, so its cost grows
 * with the parent's memory. Measured here (bench/results, scripts in the issue-13 note): a spawn
 * from a 600 MiB process stalls its event loop 36-92 ms (300 ms under load) against 5 ms from a
 * small process, and every swap spawns a loader child. The host is forked once, early, while the
 * service is still small; after that a spawn costs the event loop one IPC message.
 *
 * Ownership does not change: the service owns the host, the host owns its children, and the
 * chain holds under SIGKILL (the host leaves when the IPC channel closes; a launcher leaves when
 * the host's pipe to its stdin closes). The service still signals children by pid, so shutdown
 * and the exit hook work even if the host is wedged.
 */

/** A child process owned by this service, forked by the host. */
export interface OwnedChild {
  readonly pid: number;
  /** It was the host's warm standby (see prepareStandby), not started for this spawn. */
  readonly adopted: boolean;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  kill(signal?: NodeJS.Signals): boolean;
  /** 'data' (text from stdout or stderr), 'exit' (code, signal), 'error' (Error). */
  on(event: 'data', fn: (text: string) => void): this;
  once(event: 'exit', fn: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  once(event: 'error', fn: (err: Error) => void): this;
}

export interface SpawnOwnedOptions {
  env: NodeJS.ProcessEnv;
  /** Scheduling niceness for the child (0: inherit). */
  nice?: number;
  /** How long the host may take to answer (default 10 s). */
  timeoutMs?: number;
  /**
   * Adopt the host's warm standby if it was started as `command standby.args` with the same env and
   * nice: it gets `standby.line` (JSON, one line) on its stdin instead of a fresh start.
   */
  standby?: { args: string[]; line: string[] };
}

export interface StandbyOptions {
  env: NodeJS.ProcessEnv;
  nice?: number;
  /** How long the host keeps it unadopted before stopping it; 0 stops the current one. */
  ttlMs: number;
}

class HostedChild extends EventEmitter implements OwnedChild {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  constructor(
    readonly pid: number,
    readonly adopted = false,
  ) {
    super();
  }
  /** Output that arrived before anyone listened (a child can print, and exit, before its spawn promise settles). */
  private early: string[] | null = [];

  override on(event: string | symbol, fn: (...args: any[]) => void): this {
    super.on(event, fn);
    if (event === 'data' && this.early) {
      const early = this.early;
      this.early = null;
      for (const text of early) fn(text);
    }
    return this;
  }

  /** A listener added after the exit still hears it (IPC can deliver 'spawned' and 'exit' in one read). */
  override once(event: string | symbol, fn: (...args: any[]) => void): this {
    if (event === 'exit' && this.exited) {
      queueMicrotask(() => fn(this.exitCode, this.signalCode));
      return this;
    }
    return super.once(event, fn);
  }

  pushData(text: string): void {
    if (this.early) this.early.push(text);
    else this.emit('data', text);
  }

  get exited(): boolean {
    return this.exitCode !== null || this.signalCode !== null;
  }
  /** By pid, synchronously: works from an exit hook and with a wedged host. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.exited) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }
  markExited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exitCode = code;
    this.signalCode = signal ?? (code === null ? 'SIGKILL' : null);
    this.emit('exit', code, signal);
  }
}

type HostMessage =
  | { type: 'spawned'; id: number; pid: number; adopted?: boolean }
  | { type: 'data'; id: number; chunk: string }
  | { type: 'error'; id: number; message: string }
  | { type: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null };

class SpawnerHost {
  private readonly proc: ChildProcess;
  /** Spawn requests awaiting the host's 'spawned' (or 'error'), by request id. */
  private readonly pending = new PendingRequests<HostedChild>();
  private readonly live = new Map<number, HostedChild>();
  gone = false;

  constructor(hostPath: string) {
    // execArgv []: no profiler, loader or inspector flags of the service (or of a test runner).
    this.proc = fork(hostPath, [], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    this.proc.on('message', (m: HostMessage) => this.onMessage(m));
    this.proc.once('exit', () => this.onGone());
    this.proc.once('error', () => this.onGone());
    this.refresh();
  }

  /** Keep the service alive only while a spawn is pending or a child lives. */
  private refresh(): void {
    const busy = this.pending.size + this.live.size > 0;
    if (busy) {
      this.proc.ref();
      this.proc.channel?.ref();
    } else {
      this.proc.unref();
      this.proc.channel?.unref();
    }
  }

  private onMessage(m: HostMessage): void {
    if (m.type === 'spawned') {
      const child = new HostedChild(m.pid, m.adopted === true);
      if (!this.pending.resolve(m.id, child)) {
        // Its request timed out: nobody owns this child, end it.
        child.kill('SIGKILL');
        return;
      }
      this.live.set(m.id, child);
      child.once('exit', () => {
        this.live.delete(m.id);
        this.refresh();
      });
    } else if (m.type === 'data') {
      this.live.get(m.id)?.pushData(m.chunk);
    } else if (m.type === 'error') {
      const err = new RagError('RAG_CHROMA_START_FAILED', `could not start the Chroma child: ${m.message}`);
      if (!this.pending.reject(m.id, err)) this.live.get(m.id)?.emit('error', new Error(m.message));
    } else if (m.type === 'exit') {
      this.live.get(m.id)?.markExited(m.code, m.signal);
    }
    this.refresh();
  }

  private onGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.pending.rejectAll(new RagError('RAG_CHROMA_START_FAILED', 'the process that starts Chroma children exited'));
    // Its children leave on their own when its pipes close; make sure, and tell their owners.
    for (const child of this.live.values()) {
      child.kill('SIGKILL');
      child.markExited(null, 'SIGKILL');
    }
    this.live.clear();
  }

  spawn(command: string, args: string[], options: SpawnOwnedOptions): Promise<HostedChild> {
    if (this.gone) return Promise.reject(new RagError('RAG_CHROMA_START_FAILED', 'the process that starts Chroma children exited'));
    const timeoutMs = options.timeoutMs ?? 10_000;
    return this.pending.open(
      timeoutMs,
      () => {
        this.refresh();
        return new RagError('RAG_CHROMA_START_FAILED', `the process that starts Chroma children did not answer within ${timeoutMs} ms`);
      },
      (id) => {
        this.refresh();
        this.proc.send({ type: 'spawn', id, command, args, env: options.env, nice: options.nice ?? 0, ...(options.standby ? { standby: options.standby } : {}) });
      },
    );
  }

  standby(command: string, args: string[], options: StandbyOptions): void {
    if (this.gone || !this.proc.connected) return;
    this.proc.send({ type: 'standby', command, args, env: options.env, nice: options.nice ?? 0, ttlMs: options.ttlMs });
  }

  stop(): void {
    this.gone = true;
    if (this.proc.connected) this.proc.disconnect();
  }
}

let host: SpawnerHost | null = null;

function hostPath(): string {
  return join(dirname(new URL(import.meta.url).pathname), 'spawner-host.cjs');
}

/**
 * Fork the host now, while this process is small (the service calls this first thing at start).
 * Idempotent; a host that died is replaced on the next call. There is no second way to spawn:
 * without its script (a broken build) the start fails with a code, it does not fork the service.
 */
export function startSpawner(): void {
  if (host && !host.gone) return;
  const path = hostPath();
  if (!existsSync(path)) throw new RagError('RAG_CHROMA_START_FAILED', `the Chroma spawner host script is missing: ${path} (run npm run build)`);
  host = new SpawnerHost(path);
}

/** Stop the host (its children are killed with it). Tests and shutdown only. */
export function stopSpawner(): void {
  host?.stop();
  host = null;
}

/**
 * Ask the host to keep one warm standby child (`command args`) for `ttlMs`, for the next
 * spawnOwned whose `standby` matches it. Fire and forget: a standby that cannot start, dies or
 * expires only means the next spawn starts its child as usual. It is the host's child like any
 * other: it goes with the host, and the host goes with the service.
 */
export function prepareStandby(command: string, args: string[], options: StandbyOptions): void {
  try {
    startSpawner();
  } catch {
    return;
  }
  host!.standby(command, args, options);
}

/** Start a child owned by this service without forking the service itself. */
export function spawnOwned(command: string, args: string[], options: SpawnOwnedOptions): Promise<OwnedChild> {
  try {
    startSpawner();
  } catch (err) {
    return Promise.reject(err);
  }
  return host!.spawn(command, args, options);
}
