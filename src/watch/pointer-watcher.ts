import { EventEmitter } from 'node:events';
import type { Logger } from '../observability/logger.js';
import type { PointerRecord, SharedRegistry } from '../store/shared-registry.js';

export const PointerEvents = {
  /** The pointer names a version other than the last one seen. */
  changed: 'changed',
  /** Polling or the heartbeat failed (logged, counted; polling goes on). */
  problem: 'problem',
} as const;

export interface PointerWatcherOptions {
  /**
   * The registry, or how to open it: an opener is retried on every poll until it succeeds, so a
   * replica that starts before its Chroma server does waits for it instead of failing its start.
   */
  registry: SharedRegistry | (() => Promise<SharedRegistry>);
  name: string;
  replica: string;
  pollMs: number;
  logger: Logger;
  /** The version this replica serves now (written with every heartbeat). */
  served: () => string | null;
}

/**
 * Shared-Chroma mode's counterpart of the file watcher: polls the pointer of one store name and
 * signals when it moves, and writes this replica's heartbeat (what it serves, when) on every
 * poll, so garbage collection knows which versions are still in use. Never throws out of its
 * timer: failures are logged and emitted as 'problem', and the next poll tries again.
 */
export class PointerWatcher extends EventEmitter {
  private timer: NodeJS.Timeout | undefined;
  private last: string | null = null;
  private running: Promise<void> | null = null;
  private closed = false;
  private registry: SharedRegistry | undefined;
  polls = 0;
  failures = 0;

  constructor(private readonly options: PointerWatcherOptions) {
    super();
    if (typeof options.registry !== 'function') this.registry = options.registry;
    // An 'error' nobody listens to would crash the process: problems have their own event.
    this.on('error', () => undefined);
  }

  /** First poll (awaited), then every pollMs. */
  async start(): Promise<PointerRecord | null> {
    const first = await this.poll();
    this.timer = setInterval(() => void this.tick(), this.options.pollMs);
    this.timer.unref();
    return first;
  }

  private async tick(): Promise<void> {
    if (this.running || this.closed) return; // a slow server: never two polls at once
    this.running = this.poll().then(
      () => undefined,
      () => undefined,
    );
    await this.running;
    this.running = null;
  }

  /** One poll: read the pointer, heartbeat, and emit 'changed' if it moved. */
  async poll(): Promise<PointerRecord | null> {
    const { name, replica, logger } = this.options;
    this.polls++;
    try {
      const open = this.options.registry;
      const registry = (this.registry ??= typeof open === 'function' ? await open() : open);
      const pointer = await registry.readPointer(name);
      await registry.heartbeat({ replica, name, version: this.options.served() });
      if (pointer && pointer.version !== this.last) {
        this.last = pointer.version;
        this.emit(PointerEvents.changed, pointer);
      }
      return pointer;
    } catch (err) {
      this.failures++;
      logger.warn({ err: (err as Error).message, code: (err as { code?: string }).code, name }, 'shared pointer poll failed');
      this.emit(PointerEvents.problem, err);
      return null;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
    // A clean shutdown forgets this replica at once; a killed one ages out by the TTL.
    await this.registry?.forgetReplica(this.options.name, this.options.replica).catch(() => undefined);
  }
}
