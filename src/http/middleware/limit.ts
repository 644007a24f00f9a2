import type { RequestHandler } from 'express';
import type { Config } from '../../config.js';
import { RagError } from '../../errors.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Lifecycle } from '../context.js';

/**
 * Concurrency limit: above MAX_CONCURRENT answer 429 at once instead of queueing without bound;
 * 503 while draining. Routes that must not count (probes, event streams) are mounted before it.
 * One counter shared by every router it is mounted on.
 */
export function concurrencyLimit(config: Config, metrics: Metrics, lifecycle: Lifecycle): RequestHandler {
  let inflight = 0;
  return (_req, res, next) => {
    if (lifecycle.draining) {
      metrics.httpRejected.inc({ reason: 'draining' });
      res.setHeader('Connection', 'close');
      return next(new RagError('RAG_SHUTTING_DOWN', 'the service is shutting down'));
    }
    if (inflight >= config.maxConcurrent) {
      metrics.httpRejected.inc({ reason: 'concurrency' });
      res.setHeader('Retry-After', '1');
      return next(new RagError('RAG_HTTP_TOO_MANY_REQUESTS', `too many requests in flight (limit ${config.maxConcurrent}); retry shortly`));
    }
    inflight++;
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        inflight--;
      }
    };
    res.once('finish', release);
    res.once('close', release);
    next();
  };
}
