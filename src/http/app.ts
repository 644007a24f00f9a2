import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler } from 'express';
import { RagError } from '../errors.js';
import { keepRawBody } from '../observability/audit-log.js';
import type { AppDeps } from './context.js';
import { errorHandler, notFound } from './error-handler.js';
import { adminRoutes } from './routes-admin.js';
import { consoleRoutes } from './routes-console.js';
import { healthRoutes } from './routes-health.js';
import { openAiRoutes } from './routes-openai.js';
import { ragRoutes } from './routes-rag.js';

export type { AppDeps, Lifecycle } from './context.js';

const UNLIMITED = new Set(['/healthz', '/readyz', '/metrics']);

/** Route label for metrics: the matched route pattern, never the raw URL (unbounded cardinality). */
function routeLabel(req: express.Request): string {
  const route = (req as express.Request & { route?: { path?: string } }).route?.path;
  return route ? `${req.baseUrl}${route}` : 'unmatched';
}

/** Builds the Express app (no listen). */
export function createApp(deps: AppDeps): Express {
  const { config, metrics, lifecycle } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', 'loopback');

  let inflight = 0;
  const observe: RequestHandler = (req, res, next) => {
    const started = performance.now();
    const id = (typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].slice(0, 128)) || randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    const controller = new AbortController();
    res.locals.signal = controller.signal;
    metrics.httpInflight.inc();
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      metrics.httpInflight.dec();
      if (!res.writableFinished) controller.abort();
      const labels = { route: routeLabel(req), method: req.method, status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, (performance.now() - started) / 1000);
    };
    res.once('finish', finish);
    res.once('close', finish);
    next();
  };

  /** Concurrency limit: above MAX_CONCURRENT answer 429 at once instead of queueing without bound. */
  const limit: RequestHandler = (req, res, next) => {
    if (UNLIMITED.has(req.path) || req.path === '/admin/events') return next();
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

  /** A request still running after REQUEST_TIMEOUT_MS gets 503 (streams are ended). */
  const timeout: RequestHandler = (req, res, next) => {
    if (req.path === '/admin/events') return next();
    const timer = setTimeout(() => {
      if (res.writableEnded) return;
      if (!res.headersSent) {
        next(new RagError('RAG_HTTP_TIMEOUT', `the request took longer than ${config.requestTimeoutMs} ms`));
      } else res.end();
    }, config.requestTimeoutMs);
    timer.unref();
    res.once('close', () => clearTimeout(timer));
    next();
  };

  /** Bearer keys: API_KEYS for /v1/*, ADMIN_API_KEY for /admin/* (an admin key works on /v1 too). */
  const auth: RequestHandler = (req, _res, next) => {
    const isAdmin = req.path.startsWith('/admin/');
    const isApi = req.path.startsWith('/v1/');
    if (!isAdmin && !isApi) return next();
    const keys = config.apiKeys;
    const adminKey = config.adminApiKey;
    const header = req.headers.authorization ?? '';
    const token = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
    if (isApi) {
      if (keys.length === 0 && !adminKey) return next();
      if (keys.length === 0 && adminKey && !isAdmin) return next();
      if (token && (keys.includes(token) || token === adminKey)) return next();
      deps.metrics.httpRejected.inc({ reason: 'unauthorized' });
      return next(new RagError('RAG_HTTP_UNAUTHORIZED', token ? 'the API key is not valid' : 'missing Authorization: Bearer <key>'));
    }
    // admin
    if (!adminKey) {
      if (keys.length === 0) return next();
      deps.metrics.httpRejected.inc({ reason: 'forbidden' });
      return next(new RagError('RAG_HTTP_FORBIDDEN', 'admin routes are disabled: set ADMIN_API_KEY'));
    }
    if (token === adminKey) return next();
    if (token && keys.includes(token)) {
      deps.metrics.httpRejected.inc({ reason: 'forbidden' });
      return next(new RagError('RAG_HTTP_FORBIDDEN', 'this API key may not use admin routes'));
    }
    deps.metrics.httpRejected.inc({ reason: 'unauthorized' });
    return next(new RagError('RAG_HTTP_UNAUTHORIZED', token ? 'the admin key is not valid' : 'missing Authorization: Bearer <admin key>'));
  };

  app.use(observe);
  if (deps.audit) app.use(deps.audit.middleware());
  app.use(healthRoutes(deps));
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  app.use(auth);
  app.use(limit);
  app.use(timeout);
  app.use(express.json({ limit: config.bodyLimit, type: ['application/json', 'application/*+json'], verify: keepRawBody }));
  app.use(ragRoutes(deps));
  app.use(openAiRoutes(deps));
  app.use(adminRoutes(deps));
  app.use(consoleRoutes());
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
