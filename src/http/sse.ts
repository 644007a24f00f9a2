import type { Request, Response } from 'express';

/** A server-sent event stream on one response (text/event-stream). */
export interface EventStream {
  /** One event: `event: <name>` (omitted when null) and its JSON data. No-op once the client is gone. */
  send(event: string | null, data: unknown): void;
  /** One `data:` line as is, not JSON (OpenAI's closing `[DONE]`). */
  sendRaw(data: string): void;
  end(): void;
  readonly closed: boolean;
}

/**
 * Turn a response into a server-sent event stream: the headers proxies need to pass it through
 * unbuffered, a keep-alive comment every `pingMs` (SSE clients, the OpenAI SDKs among them, skip
 * comments), cleanup when the client goes away. The one helper of every streaming route:
 * /admin/events, /admin/documents progress and /v1/chat/completions with `stream: true`.
 */
export function openEventStream(req: Request, res: Response, options: { pingMs?: number; onClose?: () => void } = {}): EventStream {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();
  let closed = false;
  const ping = setInterval(() => {
    if (!closed) res.write(': ping\n\n');
  }, options.pingMs ?? 15_000);
  ping.unref();
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(ping);
    options.onClose?.();
  };
  req.on('close', close);
  res.on('close', close);
  return {
    send(event, data) {
      if (closed || res.destroyed) return;
      res.write(`${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`);
    },
    sendRaw(data) {
      if (closed || res.destroyed) return;
      res.write(`data: ${data}\n\n`);
    },
    end() {
      close();
      if (!res.writableEnded) res.end();
    },
    get closed() {
      return closed;
    },
  };
}

/** Whether the client asked for an event stream (Accept: text/event-stream). */
export function wantsEventStream(req: Request): boolean {
  return /\btext\/event-stream\b/.test(req.get('accept') ?? '');
}
