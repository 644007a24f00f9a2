import { randomUUID } from 'node:crypto';
import { chmod, lstat, mkdir, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { RequestHandler } from 'express';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import { RagError } from '../errors.js';
import type { Logger } from './logger.js';
import { auditBody } from './redact.js';
import { pidAlive } from '../process-alive.js';

export interface AuditLogOptions {
  dir: string;
  /** Rotate when the file reaches this size (rotating-file-stream syntax: 10M, 512K). */
  maxSize: string;
  /** Rotate at least this often (1d = daily). */
  interval: string;
  /** Rotated files kept; older ones are deleted. */
  maxFiles: number;
  compress: boolean;
  /** Bodies longer than this are cut (and marked truncated). */
  bodyMaxBytes: number;
  logger: Logger;
  /** Lines waiting to be written before new ones are dropped (and counted). */
  maxQueue?: number;
  onDrop?: () => void;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** How often the owner touches its lock, and when an untouched lock counts as abandoned. */
const LOCK_HEARTBEAT_MS = 10_000;
const LOCK_STALE_MS = 30_000;
const LOCK_FILE = '.audit.lock';
/** Audit folders locked by services in this process (tests run several services per process). */
const lockedHere = new Set<string>();

interface LockInfo {
  instance: string;
  pid: number;
  host: string;
  startedAt: string;
}

/**
 * One writer per audit folder. Two instances appending to one rotating file would lose lines
 * silently (each rotates and renames the other's file), so the second one refuses to start. The
 * lock holds the owner's pid, host and a heartbeat (its mtime): a lock left by a dead process on
 * this host, or not touched for LOCK_STALE_MS (a crashed container), is taken over.
 */
class AuditDirLock {
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  private readonly info: LockInfo = { instance: randomUUID(), pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  constructor(private readonly dir: string) {}

  private get path(): string {
    return join(this.dir, LOCK_FILE);
  }

  async acquire(): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(this.path, 'wx', 0o600);
        await fh.writeFile(JSON.stringify(this.info));
        await fh.close();
        lockedHere.add(this.dir);
        this.held = true;
        this.timer = setInterval(() => {
          const now = new Date();
          utimes(this.path, now, now).catch(() => undefined);
        }, LOCK_HEARTBEAT_MS);
        this.timer.unref();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new RagError('RAG_AUDIT_DIR_UNUSABLE', `cannot create the audit lock in AUDIT_LOG_DIR: ${(err as Error).message}`, { cause: err });
        }
      }
      const owner = await this.readOwner();
      if (owner.stale) {
        // Move the stale lock aside first: of two instances racing to take it over, one wins the rename.
        await rename(this.path, `${this.path}.stale-${this.info.instance}`).then(() => unlink(`${this.path}.stale-${this.info.instance}`), () => undefined);
        continue;
      }
      const who = owner.info ? `pid ${owner.info.pid} on host ${owner.info.host}, since ${owner.info.startedAt}` : 'an instance whose lock cannot be read';
      throw new RagError(
        'RAG_AUDIT_DIR_IN_USE',
        `the audit log folder ${this.dir} is in use by another instance (${who}); give each instance its own AUDIT_LOG_DIR (two writers on one folder would lose lines). A lock not renewed for ${LOCK_STALE_MS / 1000} s is taken over.`,
      );
    }
    throw new RagError('RAG_AUDIT_DIR_IN_USE', `the audit log folder ${this.dir} is being claimed by another instance; give each instance its own AUDIT_LOG_DIR`);
  }

  private async readOwner(): Promise<{ stale: boolean; info: LockInfo | null }> {
    let info: LockInfo | null = null;
    try {
      info = JSON.parse(await readFile(this.path, 'utf8')) as LockInfo;
    } catch {
      info = null;
    }
    let age = 0;
    try {
      age = Date.now() - (await stat(this.path)).mtimeMs;
    } catch {
      return { stale: true, info }; // gone meanwhile
    }
    if (age > LOCK_STALE_MS) return { stale: true, info };
    if (info && info.host === hostname()) {
      // Same host: a dead pid is stale; our own pid is stale unless a service in this process holds it
      // (a restarted container runs as the same pid 1 on the same host name).
      if (!pidAlive(info.pid)) return { stale: true, info };
      if (info.pid === process.pid && !lockedHere.has(this.dir)) return { stale: true, info };
    }
    return { stale: false, info };
  }

  async release(): Promise<void> {
    clearInterval(this.timer);
    if (!this.held) return;
    this.held = false;
    lockedHere.delete(this.dir);
    try {
      const current = JSON.parse(await readFile(this.path, 'utf8')) as LockInfo;
      if (current.instance === this.info.instance) await unlink(this.path);
    } catch {
      /* already gone */
    }
  }
}

/**
 * One JSON line per request (time, request id, route, status, latency, client, body capped and
 * with secrets redacted), queued and written off the hot path to a file rotated by size and by
 * day, compressed, with a bounded number of files kept (rotating-file-stream). The folder is
 * 0700, the files 0600, and one instance writes a folder at a time.
 */
export class AuditLog {
  private stream: RotatingFileStream | undefined;
  private readonly lock: AuditDirLock;
  private queue: string[] = [];
  private scheduled = false;
  private closed = false;
  dropped = 0;

  constructor(private readonly options: AuditLogOptions) {
    this.lock = new AuditDirLock(options.dir);
  }

  /** Create the folder (0700), take its lock, open the file (0600). Throws a RagError on refusal. */
  async open(): Promise<void> {
    const { dir } = this.options;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const st = await lstat(dir);
      if (!st.isDirectory()) throw new Error('not a directory');
      if ((st.mode & 0o077) !== 0) await chmod(dir, 0o700);
    } catch (err) {
      throw new RagError('RAG_AUDIT_DIR_UNUSABLE', `AUDIT_LOG_DIR ${dir} cannot be used: ${(err as Error).message}`, { cause: err });
    }
    await this.lock.acquire();
    const options = this.options;
    const generator = (time: number | Date | null, index?: number): string => {
      if (!time) return 'audit.log';
      const d = typeof time === 'number' ? new Date(time) : time;
      return `audit-${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}-${index ?? 0}.log${options.compress ? '.gz' : ''}`;
    };
    const stream = createStream(generator, {
      path: dir,
      size: options.maxSize as `${number}M`,
      interval: options.interval as `${number}d`,
      maxFiles: options.maxFiles,
      mode: 0o600,
      ...(options.compress ? { compress: 'gzip' as const } : {}),
    });
    stream.on('error', (err) => options.logger.error({ err }, 'audit log write failed'));
    stream.on('warning', (err) => options.logger.warn({ err }, 'audit log warning'));
    // The rotation history (file names only) is written with the default mode: tighten it too.
    stream.on('history', () => void chmod(join(dir, 'audit.log.txt'), 0o600).catch(() => undefined));
    this.stream = stream;
    this.flush();
  }

  private write(line: string): void {
    if (this.closed) return;
    if (this.queue.length >= (this.options.maxQueue ?? 10_000)) {
      this.dropped++;
      this.options.onDrop?.();
      return;
    }
    this.queue.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0 || !this.stream) return;
    const chunk = this.queue.join('');
    this.queue = [];
    this.stream.write(chunk);
  }

  /**
   * Audits every request that enters the router it is mounted on (attach it to the /v1 and
   * /admin routers, first, so refusals by auth and limits are audited too): no path test here.
   */
  middleware(): RequestHandler {
    const cap = this.options.bodyMaxBytes;
    return (req, res, next) => {
      const started = performance.now();
      const time = new Date().toISOString();
      res.once('close', () => {
        const raw = (req as typeof req & { rawBody?: Buffer }).rawBody;
        const { body, truncated } = auditBody(req.body, raw, cap);
        const route = (req as typeof req & { route?: { path?: string } }).route?.path;
        const path = req.originalUrl.split('?')[0] ?? '';
        const line = {
          time,
          requestId: res.locals.requestId as string | undefined,
          method: req.method,
          route: route ? `${req.baseUrl}${route}` : null,
          path: path.length > 512 ? `${path.slice(0, 512)}...` : path,
          status: res.statusCode,
          latencyMs: Math.round((performance.now() - started) * 100) / 100,
          client: req.ip ?? req.socket.remoteAddress ?? null,
          userAgent: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'].slice(0, 256) : null,
          // Credentials are never written, only whether some were sent.
          auth: req.headers.authorization ? 'bearer [redacted]' : 'none',
          generation: (req as typeof req & { generation?: string }).generation ?? null,
          aborted: !res.writableFinished,
          bodyBytes: raw?.length ?? 0,
          ...(body !== undefined ? { body } : {}),
          ...(truncated ? { bodyTruncated: true } : {}),
        };
        this.write(`${JSON.stringify(line)}\n`);
      });
      next();
    };
  }

  /**
   * One line for a call this service made to an upstream (the LLM): `kind: "upstream"`, the request
   * id that caused it, the body as sent (secrets redacted, cut like request bodies), the status or
   * error, the latency.
   */
  upstream(entry: { requestId: string | null; body: unknown } & Record<string, unknown>): void {
    const cap = this.options.bodyMaxBytes;
    const text = JSON.stringify(entry.body ?? null);
    const { body, truncated } = auditBody(entry.body ?? null, Buffer.from(text), cap);
    const line = { time: new Date().toISOString(), kind: 'upstream', ...entry, body, ...(truncated ? { bodyTruncated: true } : {}) };
    this.write(`${JSON.stringify(line)}\n`);
  }

  /** Flush what is queued, close the file and release the folder. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    const stream = this.stream;
    if (stream) await new Promise<void>((resolve) => stream.end(() => resolve()));
    await this.lock.release();
  }
}
