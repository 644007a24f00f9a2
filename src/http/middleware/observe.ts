import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { Metrics } from '../../observability/metrics.js';

/** A client's X-Request-Id is echoed only when it is short and plain; otherwise we make one. */
const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Route label for metrics: the matched route pattern, never the raw URL (unbounded cardinality). */
export function routeLabel(req: Request): string {
  const route = (req as Request & { route?: { path?: string } }).route?.path;
  return route ? `${req.baseUrl}${route}` : 'unmatched';
}

/**
 * First middleware of every request: request id, an abort signal for work the client gave up on,
 * in-flight gauge, request count and latency by route pattern. The signal (`res.locals.signal`) is
 * made when a route first reads it (an LLM call, a stream): an AbortController costs ~7 us in Node 20
 * (measured: 2% of a /v1/retrieve request's CPU at c=16), and retrieval never needs one. Read after
 * the client went away, it comes already aborted.
 */
export function observe(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const given = req.headers['x-request-id'];
    const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    let controller: AbortController | undefined;
    let gone = false;
    Object.defineProperty(res.locals, 'signal', {
      configurable: true,
      enumerable: true,
      get: () => {
        if (!controller) {
          controller = new AbortController();
          if (gone) controller.abort();
        }
        return controller.signal;
      },
    });
    metrics.httpInflight.inc();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      metrics.httpInflight.dec();
      if (!res.writableFinished) {
        gone = true;
        controller?.abort();
      }
      const labels = { route: routeLabel(req), method: req.method.length <= 10 ? req.method : 'OTHER', status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, (performance.now() - started) / 1000);
    };
    res.once('finish', finish);
    res.once('close', finish);
    next();
  };
}
