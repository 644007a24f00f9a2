import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import { RagError } from '../errors.js';
import { forgetOrigin } from './fetch-origins.js';
import type { Logger } from '../observability/logger.js';
import { resolveChromaRuntime } from './chroma-runtime.js';
import { prepareStandby, spawnOwned, type OwnedChild } from './spawner.js';

export const ChromaServerEvents = {
  started: 'started',
  exited: 'exited',
  restarted: 'restarted',
  failed: 'failed',
  /** The child missed heartbeatMisses heartbeats in a row; it is killed and restarted. */
  unhealthy: 'unhealthy',
} as const;
export type ChromaServerEvent = (typeof ChromaServerEvents)[keyof typeof ChromaServerEvents];

export interface ChromaServerOptions {
  /** Folder Chroma persists to (it must not be shared with another running server). */
  dataDir: string;
  logger: Logger;
  host?: string;
  startTimeoutMs?: number;
  stopGraceMs?: number;
  /** Restart the child when it dies on its own (default true). */
  restart?: boolean;
  maxRestarts?: number;
  /** Heartbeat the running child this often (0: never). */
  heartbeatMs?: number;
  /** Heartbeats missed in a row before the child counts as hung and is restarted. */
  heartbeatMisses?: number;
  /** Scheduling niceness for the child (e.g. 10 for a loader child that must yield CPU to requests). */
  nice?: number;
}

export type ChromaServerState = 'new' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

/** Every live child, so a crashing parent still takes them down (see the exit hook below). */
const liveChildren = new Set<OwnedChild>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/** Number of Chroma children this process currently owns (tests assert it drops to 0). */
export function liveChromaChildren(): number {
  return liveChildren.size;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const ANSI = /\u001b\[[0-9;]*m/g;

type ChromaRuntime = Awaited<ReturnType<typeof resolveChromaRuntime>>;

/** The environment of every Chroma child (a standby is adopted only by a spawn with the same one). */
function chromaChildEnv(runtime: ChromaRuntime): NodeJS.ProcessEnv {
  return { ...process.env, CHROMA_BINDING_PATH: runtime.bindingPath, NO_COLOR: '1', RUST_LOG: process.env.CHROMA_RUST_LOG ?? 'warn,chroma_frontend=info' };
}

function standbyArgs(runtime: ChromaRuntime): string[] {
  return [...runtime.prefixArgs, runtime.launcherPath, '--standby'];
}

/**
 * Keep one warm Chroma child for `ttlMs` (the spawner host's standby: Node started and the 53 MB
 * binding loaded, ~56 MiB), so the next ChromaServer started with the same `nice` adopts it and
 * skips most of a child's start (~150-200 ms of the ~250-340 ms measured here). Called again, it
 * only extends the time. Fire and forget: without one, the next start is a cold start.
 */
export async function prepareChromaStandby(options: { nice?: number; ttlMs: number }): Promise<void> {
  let runtime: ChromaRuntime;
  try {
    runtime = await resolveChromaRuntime();
  } catch {
    return; // no runtime: the next start reports why
  }
  prepareStandby(runtime.command, standbyArgs(runtime), { env: chromaChildEnv(runtime), nice: options.nice ?? 0, ttlMs: options.ttlMs });
}

/**
 * One Chroma server child process, owned by this object: started on a free loopback port,
 * health-checked, restarted when it dies on its own, and stopped (SIGTERM, then SIGKILL) by stop().
 */
export class ChromaServer extends EventEmitter {
  readonly dataDir: string;
  readonly host: string;
  private readonly logger: Logger;
  private readonly startTimeoutMs: number;
  private readonly stopGraceMs: number;
  private readonly restartEnabled: boolean;
  private readonly maxRestarts: number;
  private child: OwnedChild | undefined;
  private portValue = 0;
  private stateValue: ChromaServerState = 'new';
  private stopPromise: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  /** stop() was called: a start in progress gives up and kills what it spawned. */
  private stopRequested = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private tail: string[] = [];
  private readonly heartbeatMs: number;
  private readonly heartbeatMisses: number;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private missed = 0;
  restarts = 0;
  private readonly nice: number;
  /** The last child started was the spawner host's warm standby (prepareChromaStandby). */
  adoptedStandby = false;

  constructor(options: ChromaServerOptions) {
    super();
    this.dataDir = options.dataDir;
    this.host = options.host ?? '127.0.0.1';
    this.logger = options.logger.child({ component: 'chroma', dataDir: options.dataDir });
    this.startTimeoutMs = options.startTimeoutMs ?? 20_000;
    this.stopGraceMs = options.stopGraceMs ?? 2_000;
    this.restartEnabled = options.restart ?? true;
    this.maxRestarts = options.maxRestarts ?? 20;
    this.heartbeatMs = options.heartbeatMs ?? 0;
    this.heartbeatMisses = options.heartbeatMisses ?? 3;
    this.nice = options.nice ?? 0;
  }

  /** Running and answering its heartbeats (a stopped or hung child is not healthy). */
  get healthy(): boolean {
    return this.stateValue === 'running' && this.missed < this.heartbeatMisses;
  }

  private startHeartbeat(): void {
    if (!this.heartbeatMs || this.heartbeatTimer) return;
    let busy = false;
    this.heartbeatTimer = setInterval(() => {
      if (busy || this.stateValue !== 'running') return;
      busy = true;
      void this.heartbeat(this.portValue, Math.max(200, Math.min(this.heartbeatMs, 2000)))
        .then((ok) => {
          if (this.stateValue !== 'running') return;
          if (ok) {
            this.missed = 0;
            return;
          }
          this.missed++;
          if (this.missed === this.heartbeatMisses) {
            this.logger.error({ missed: this.missed, pid: this.pid }, 'chroma server missed its heartbeats; killing and restarting it');
            this.emit(ChromaServerEvents.unhealthy, { missed: this.missed, pid: this.pid });
            // SIGKILL also ends a SIGSTOPped child; the exit handler restarts it.
            this.child?.kill('SIGKILL');
          }
        })
        .finally(() => {
          busy = false;
        });
    }, this.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  get state(): ChromaServerState {
    return this.stateValue;
  }
  get port(): number {
    return this.portValue;
  }
  get url(): string {
    return `http://${this.host}:${this.portValue}`;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): Promise<void> {
    if (this.stateValue !== 'new') return Promise.reject(new RagError('RAG_CHROMA_START_FAILED', `chroma server already ${this.stateValue}`));
    this.starting = this.startNow();
    return this.starting;
  }

  private async startNow(): Promise<void> {
    this.stateValue = 'starting';
    try {
      await this.spawnWithPortRetry();
      this.stateValue = 'running';
      this.startHeartbeat();
      this.emit(ChromaServerEvents.started, { port: this.portValue, pid: this.pid });
    } catch (err) {
      this.stateValue = 'failed';
      throw err;
    }
  }

  /** Resolves when the child answers heartbeats again (or rejects after the timeout). */
  async waitUntilRunning(timeoutMs: number): Promise<void> {
    if (this.stateValue === 'running') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new RagError('RAG_STORE_UNAVAILABLE', `the Chroma server is ${this.stateValue}`));
      }, timeoutMs);
      const onUp = () => {
        cleanup();
        resolve();
      };
      const onDown = () => {
        cleanup();
        reject(new RagError('RAG_STORE_UNAVAILABLE', `the Chroma server is ${this.stateValue}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.off(ChromaServerEvents.restarted, onUp);
        this.off(ChromaServerEvents.failed, onDown);
      };
      this.on(ChromaServerEvents.restarted, onUp);
      this.on(ChromaServerEvents.failed, onDown);
    });
  }

  private async spawnWithPortRetry(): Promise<void> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      // Reuse the port on restarts so clients keep their URL; a fresh one if it was taken.
      const port = this.portValue && attempt === 0 ? this.portValue : await freePort(this.host);
      try {
        await this.spawnOnce(port);
        return;
      } catch (err) {
        lastErr = err;
        if (!(err instanceof RagError && err.code === 'RAG_CHROMA_PORT_IN_USE')) throw err;
        this.logger.warn({ port }, 'chroma port taken, trying another');
      }
    }
    throw lastErr;
  }

  private async spawnOnce(port: number): Promise<void> {
    const runtime = await resolveChromaRuntime();
    installExitHook();
    const line = ['run', '--path', this.dataDir, '--port', String(port), '--host', this.host];
    // Forked by the spawner host, not by this (large) process: see spawner.ts. A warm standby of
    // the same kind (prepareChromaStandby) is adopted instead of a fresh start when there is one.
    const child = await spawnOwned(runtime.command, [...runtime.prefixArgs, runtime.launcherPath, ...line], {
      env: chromaChildEnv(runtime),
      nice: this.nice,
      standby: { args: standbyArgs(runtime), line },
    });
    this.adoptedStandby = child.adopted;
    liveChildren.add(child);
    this.child = child;
    this.portValue = port;
    this.tail = [];
    let listening = false;
    let portTaken = false;
    const onData = (text: string) => {
      for (const raw of text.split('\n')) {
        const line = raw.replace(ANSI, '').trim();
        if (!line || /^[(#\s]+$/.test(line)) continue;
        this.tail.push(line);
        if (this.tail.length > 40) this.tail.shift();
        if (line.includes('listening on address') && line.includes(`:${port}`)) listening = true;
        if (/not available|address already in use/i.test(line)) portTaken = true;
        if (/panic|error/i.test(line)) this.logger.warn({ line }, 'chroma');
        else this.logger.trace({ line }, 'chroma');
      }
    };
    child.on('data', onData);
    let exited = false;
    let exitInfo = '';
    child.once('exit', (code, signal) => {
      exited = true;
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      liveChildren.delete(child);
      // fetch's pool for this child's origin would otherwise stay for the life of the process (fetch-origins.ts).
      forgetOrigin(`http://${this.host}:${port}`);
      if (this.child === child) this.onChildExit(code, signal);
    });
    child.once('error', (err) => {
      exited = true;
      exitInfo = err.message;
      liveChildren.delete(child);
      forgetOrigin(`http://${this.host}:${port}`);
    });

    const deadline = Date.now() + this.startTimeoutMs;
    while (Date.now() < deadline) {
      if (exited) break;
      // Checked first on the first pass too: a stop that came while the child was being spawned.
      if (this.stopRequested) {
        child.kill('SIGKILL');
        throw new RagError('RAG_CHROMA_START_FAILED', 'the Chroma server was stopped during its start');
      }
      if (listening && (await this.heartbeat(port))) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!exited) child.kill('SIGKILL');
    const tail = this.tail.slice(-8).join(' | ');
    if (portTaken) {
      throw new RagError('RAG_CHROMA_PORT_IN_USE', `port ${port} is in use by another process`);
    }
    throw new RagError(
      'RAG_CHROMA_START_FAILED',
      exited
        ? `the Chroma server exited during start-up (${exitInfo}): ${tail || 'no output'}`
        : `the Chroma server did not answer within ${this.startTimeoutMs} ms: ${tail || 'no output'}`,
      { details: { dataDir: this.dataDir, port } },
    );
  }

  private async heartbeat(port: number, timeoutMs = 1000): Promise<boolean> {
    try {
      const res = await fetch(`http://${this.host}:${port}/api/v2/heartbeat`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  }

  /** True when the child answers its heartbeat now. */
  async isHealthy(): Promise<boolean> {
    return this.stateValue === 'running' && this.heartbeat(this.portValue);
  }

  private onChildExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.child = undefined;
    if (this.stateValue === 'stopping' || this.stateValue === 'stopped') return;
    const wasRunning = this.stateValue === 'running';
    this.logger.error({ code, signal, tail: this.tail.slice(-5) }, 'chroma server exited unexpectedly');
    this.emit(ChromaServerEvents.exited, { code, signal });
    if (!wasRunning || !this.restartEnabled) return;
    if (this.restarts >= this.maxRestarts) {
      this.stateValue = 'failed';
      this.emit(ChromaServerEvents.failed, new RagError('RAG_STORE_UNAVAILABLE', 'the Chroma server keeps dying; giving up'));
      return;
    }
    this.stateValue = 'restarting';
    const delay = Math.min(2000, 50 * 2 ** Math.min(this.restarts, 5));
    this.restartTimer = setTimeout(() => void this.restartNow(), delay);
  }

  private async restartNow(): Promise<void> {
    this.restartTimer = undefined;
    if (this.stateValue !== 'restarting') return;
    this.restarts++;
    try {
      await this.spawnWithPortRetry();
      if ((this.stateValue as ChromaServerState) !== 'restarting') {
        // stop() ran while we were starting: do not leave the new child behind.
        this.child?.kill('SIGKILL');
        return;
      }
      this.stateValue = 'running';
      this.missed = 0;
      this.logger.warn({ restarts: this.restarts, port: this.portValue }, 'chroma server restarted');
      this.emit(ChromaServerEvents.restarted, { restarts: this.restarts, port: this.portValue });
    } catch (err) {
      if (this.stateValue !== 'restarting') return;
      this.logger.error({ err }, 'chroma restart failed');
      this.onChildExit(null, null);
    }
  }

  /**
   * Idempotent: SIGTERM, then SIGKILL after the grace period; resolves once the child is gone.
   * Called during start, it ends the start (which rejects) and then stops whatever child the start
   * had spawned: a child is never left running behind a stopped server.
   */
  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.stopRequested = true;
      await this.starting?.catch(() => undefined);
      this.stateValue = 'stopping';
      if (this.restartTimer) clearTimeout(this.restartTimer);
      clearInterval(this.heartbeatTimer);
      const child = this.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        // A SIGSTOPped child never handles SIGTERM: SIGCONT lets it, SIGKILL below ends it anyway.
        child.kill('SIGCONT');
        const timer = setTimeout(() => child.kill('SIGKILL'), this.stopGraceMs);
        await gone;
        clearTimeout(timer);
      }
      if (child) liveChildren.delete(child);
      this.child = undefined;
      this.stateValue = 'stopped';
    })();
    return this.stopPromise;
  }

  /** Kill the child with a signal as a crash would (tests and fault injection only). */
  killForTest(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child?.kill(signal);
  }
}
