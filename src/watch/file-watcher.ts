import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import type { Logger } from '../observability/logger.js';
import { RagError } from '../errors.js';
import { folderFingerprint } from '../fs/fingerprint.js';

export const WatchEvents = {
  /** Files under a watched root changed and have stopped changing. */
  settled: 'settled',
  /**
   * A watcher problem (a link loop, an unreadable entry, a lost inotify watch): logged, counted
   * and shown in the status. Deliberately not named 'error': an 'error' event without a
   * listener would crash the process, and chokidar's errors are input problems, not bugs.
   */
  problem: 'problem',
  /**
   * The first event of a burst under a root, before the debounce and stability waits: work that
   * a likely reload will need can start now (the service warms a standby loader child).
   */
  activity: 'activity',
} as const;

export interface WatchProblem {
  code: 'RAG_WATCH_ERROR';
  message: string;
  at: string;
}

export interface FileWatcherOptions {
  roots: string[];
  logger: Logger;
  debounceMs: number;
  stabilityMs: number;
  polling: boolean;
  /** Max time to wait for writes to settle before signalling anyway (the reload validates). */
  maxSettleMs?: number;
  /**
   * A slow full rescan as a safety net: a watched root deleted and created again loses its
   * inotify watch, and events can be lost on some bind mounts and network filesystems.
   */
  rescanMs?: number;
  /**
   * Files whose change marks a finished write (a versioned store's CURRENT pointer, replaced by
   * rename as the publisher's last step). A burst that includes one settles without the debounce
   * and stability waits: the version it names is complete by protocol, and the reload checks it
   * against its manifest anyway (a version still being written is refused, then retried when its
   * later file events settle).
   */
  commitFiles?: string[];
}

const hidden = (root: string, path: string) => relative(root, path).split(sep).some((part) => part.startsWith('.'));

/**
 * Turns bursts of file events under ./vectorstore and ./models into one "candidate changed"
 * signal, emitted only once the files have kept the same size and mtime for stabilityMs.
 * Dot-files and dot-folders (work in progress: `.tmp-*`) are ignored. It never throws out of
 * an event handler: errors are logged and emitted.
 */
export class FileWatcher extends EventEmitter {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settling = false;
  private again = false;
  private closed = false;
  private readonly changedRoots = new Set<string>();
  private rescanTimer: NodeJS.Timeout | undefined;
  private lastSettled = '';
  private readonly lostRoots = new Set<string>();
  /** Each root's inode when it was last (re)watched: a root replaced in place (`mv new vectorstore`) is watched again. */
  private readonly rootIno = new Map<string, number>();
  /** A commit file changed since the last settle. */
  private committed = false;
  eventsSeen = 0;
  /** Events the file system delivered (eventsSeen without the rescan's own). */
  fsEventsSeen = 0;
  errors = 0;
  lastProblem: WatchProblem | null = null;

  constructor(private readonly options: FileWatcherOptions) {
    super();
  }

  async start(): Promise<void> {
    const { roots, polling } = this.options;
    this.watcher = chokidar.watch(roots, {
      ignoreInitial: true,
      persistent: true,
      usePolling: polling,
      // Links are never followed by the watcher (a link to / or a loop would make it walk the
      // machine); the reload source resolves links inside the root and the rescan sees changes.
      followSymlinks: false,
      interval: 500,
      binaryInterval: 1000,
      ignored: (path: string) => roots.some((root) => path.startsWith(root) && hidden(root, path)),
    });
    this.watcher.on('all', (event, path) => {
      this.fsEventsSeen++;
      this.onEvent(event, path);
    });
    this.watcher.on('error', (err) => this.noteProblem(err, 'file watcher error'));
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    for (const root of roots) {
      const ino = await rootInode(root);
      if (ino !== null) this.rootIno.set(root, ino);
    }
    this.lastSettled = await this.snapshot();
    if (this.options.rescanMs) {
      this.rescanTimer = setInterval(() => void this.rescan(), this.options.rescanMs);
      this.rescanTimer.unref();
    }
  }

  private async rescan(): Promise<void> {
    if (this.closed || this.settling) return;
    try {
      const now = await this.snapshot();
      // A root that disappeared and came back, or a root replaced by another folder under its name
      // (`mv new vectorstore`: the watcher still follows the old folder; measured: no event at all
      // for the new one, its changes seen only by this rescan, and a change undone within one rescan
      // never): watch it again, once, and look at it as changed.
      let replaced: string | null = null;
      for (const root of this.options.roots) {
        const ino = await rootInode(root);
        const known = this.rootIno.get(root);
        const back = this.lostRoots.has(root) && !now.includes(`${root}=missing`);
        if (ino === null || (ino === known && !back)) continue;
        this.rootIno.set(root, ino);
        this.lostRoots.delete(root);
        if (known === undefined && !back) continue;
        if (!back) await this.watcher?.unwatch(root);
        this.watcher?.add(root);
        replaced = root;
      }
      if (replaced) this.onEvent('rescan', replaced);
      else if (now !== this.lastSettled && !this.timer && !this.settling) this.onEvent('rescan', this.options.roots[0]!);
    } catch (err) {
      this.noteProblem(err, 'rescan failed');
    }
  }

  private onEvent(event: string, path: string): void {
    if (this.closed) return;
    this.eventsSeen++;
    const root = this.options.roots.find((r) => path === r || path.startsWith(r + sep));
    if (root && !this.changedRoots.has(root)) this.emit(WatchEvents.activity, { root });
    if (root) this.changedRoots.add(root);
    if (event === 'unlinkDir' && root === path) this.lostRoots.add(root);
    if (event !== 'unlink' && this.options.commitFiles?.includes(path)) this.committed = true;
    this.options.logger.trace({ event, path }, 'file event');
    if (this.settling) {
      this.again = true;
      return;
    }
    this.schedule();
  }

  /** (Re)start the debounce timer; a commit file's change settles at once. */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        void this.settle();
      },
      this.committed ? 0 : this.options.debounceMs,
    );
  }

  private async settle(): Promise<void> {
    this.settling = true;
    const started = Date.now();
    const maxSettle = this.options.maxSettleMs ?? 120_000;
    try {
      let prev = await this.snapshot();
      for (;;) {
        if (this.committed) {
          // A finished write: no stability wait. Events during this round start another.
          this.committed = false;
          break;
        }
        this.again = false;
        await new Promise((r) => setTimeout(r, this.options.stabilityMs));
        if (this.closed) return;
        const next = await this.snapshot();
        if (next === prev && !this.again) break;
        prev = next;
        if (Date.now() - started > maxSettle) {
          this.options.logger.warn({ ms: Date.now() - started }, 'files keep changing; signalling anyway');
          break;
        }
      }
      this.lastSettled = prev;
      const roots = [...this.changedRoots];
      this.changedRoots.clear();
      this.emit(WatchEvents.settled, { roots });
    } catch (err) {
      this.noteProblem(err, 'settle check failed');
    } finally {
      this.settling = false;
    }
    // Events that arrived after the commit round's snapshot (their roots are already noted): settle them too.
    if (this.again && !this.closed && !this.timer) {
      this.again = false;
      this.schedule();
    }
  }

  /** Never throws for an input problem: it logs, counts and keeps it for the status. */
  private noteProblem(err: unknown, what: string): void {
    this.errors++;
    const e = err as NodeJS.ErrnoException;
    const message = `${what}: ${e?.code ? `${e.code} ` : ''}${e?.message ?? String(err)}`.slice(0, 500);
    this.lastProblem = { code: 'RAG_WATCH_ERROR', message, at: new Date().toISOString() };
    this.options.logger.warn({ err: message, errors: this.errors }, 'file watcher problem (the service keeps serving)');
    try {
      this.emit(WatchEvents.problem, this.lastProblem);
    } catch (listenerErr) {
      this.options.logger.error({ err: listenerErr }, 'watch problem listener threw');
    }
  }

  /** A content fingerprint of every entry under the roots (no file is opened; links are not followed out). */
  private async snapshot(): Promise<string> {
    const parts = await Promise.all(
      this.options.roots.map(async (root) => {
        try {
          return `${root}=${(await folderFingerprint(root)).fingerprint}`;
        } catch (err) {
          if (err instanceof RagError && err.code !== 'RAG_FS_NOT_FOUND') this.noteProblem(err, `cannot scan ${root}`);
          return `${root}=missing`;
        }
      }),
    );
    return parts.join('|');
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.rescanTimer);
    await this.watcher?.close();
  }
}

/** A folder's inode (null when it cannot be read: missing roots are handled by the rescan's snapshot). */
async function rootInode(dir: string): Promise<number | null> {
  try {
    return (await stat(dir)).ino;
  } catch {
    return null;
  }
}
