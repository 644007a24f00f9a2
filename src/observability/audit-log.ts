import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import type { Logger } from './logger.js';

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

const SECRET_KEYS = /^(authorization|api[_-]?key|apikey|password|secret|token)$/i;

function redact(value: unknown, depth = 0): unknown {
  if (depth > 20 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

/** Raw request bytes, kept by express.json's verify hook so bodies that fail to parse are audited too. */
export function keepRawBody(req: IncomingMessage, _res: unknown, buf: Buffer): void {
  (req as IncomingMessage & { rawBody?: Buffer }).rawBody = buf;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * One JSON line per request (time, request id, route, status, latency, client, body capped and
 * with secrets redacted), queued and written off the hot path to a file rotated by size and by
 * day, compressed, with a bounded number of files kept (rotating-file-stream).
 */
export class AuditLog {
  private readonly stream: RotatingFileStream;
  private queue: string[] = [];
  private scheduled = false;
  private closed = false;
  dropped = 0;

  constructor(private readonly options: AuditLogOptions) {
    const generator = (time: number | Date | null, index?: number): string => {
      if (!time) return 'audit.log';
      const d = typeof time === 'number' ? new Date(time) : time;
      return `audit-${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}-${index ?? 0}.log${options.compress ? '.gz' : ''}`;
    };
    this.stream = createStream(generator, {
      path: options.dir,
      size: options.maxSize as `${number}M`,
      interval: options.interval as `${number}d`,
      maxFiles: options.maxFiles,
      ...(options.compress ? { compress: 'gzip' as const } : {}),
    });
    this.stream.on('error', (err) => options.logger.error({ err }, 'audit log write failed'));
    this.stream.on('warning', (err) => options.logger.warn({ err }, 'audit log warning'));
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
    if (this.queue.length === 0) return;
    const chunk = this.queue.join('');
    this.queue = [];
    this.stream.write(chunk);
  }

  middleware(): RequestHandler {
    const cap = this.options.bodyMaxBytes;
    return (req, res, next) => {
      if (!req.path.startsWith('/v1/') && !req.path.startsWith('/admin/')) return next();
      const started = performance.now();
      const time = new Date().toISOString();
      res.once('close', () => {
        const raw = (req as typeof req & { rawBody?: Buffer }).rawBody;
        let body: unknown;
        let truncated = false;
        if (raw && raw.length > cap) {
          body = raw.subarray(0, cap).toString('utf8');
          truncated = true;
        } else if (req.body !== undefined && typeof req.body === 'object' && raw) {
          body = redact(req.body);
        } else if (raw) {
          body = raw.toString('utf8'); // did not parse: keep the text, that is the point
        }
        const route = (req as typeof req & { route?: { path?: string } }).route?.path;
        const line = {
          time,
          requestId: res.locals.requestId as string | undefined,
          method: req.method,
          route: route ?? null,
          path: req.path,
          status: res.statusCode,
          latencyMs: Math.round((performance.now() - started) * 100) / 100,
          client: req.ip ?? req.socket.remoteAddress ?? null,
          userAgent: req.headers['user-agent'] ?? null,
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
    const body = Buffer.byteLength(text) > cap ? Buffer.from(text).subarray(0, cap).toString('utf8') : redact(entry.body);
    const line = { time: new Date().toISOString(), kind: 'upstream', ...entry, body, ...(typeof body === 'string' && body !== entry.body ? { bodyTruncated: true } : {}) };
    this.write(`${JSON.stringify(line)}\n`);
  }

  /** Flush what is queued and close the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    await new Promise<void>((resolve) => this.stream.end(() => resolve()));
  }
}
