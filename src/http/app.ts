import express, { type Express } from 'express';
import type { AppDeps } from './context.js';
import { errorHandler, notFound } from './error-handler.js';
import { requireKey } from './middleware/auth.js';
import { jsonBody } from './middleware/json-body.js';
import { concurrencyLimit } from './middleware/limit.js';
import { observe } from './middleware/observe.js';
import { requestTimeout } from './middleware/timeout.js';
import { adminEventRoutes, adminRoutes } from './routes-admin.js';
import { consoleRoutes } from './routes-console.js';
import { documentRoutes } from './routes-documents.js';
import { healthRoutes } from './routes-health.js';
import { openAiRoutes } from './routes-openai.js';
import { ragRoutes } from './routes-rag.js';
import { createRouter } from './router.js';

export type { AppDeps, Lifecycle } from './context.js';

/**
 * Builds the Express app (no listen). Decisions attach to routers, never to path strings:
 *
 *     observe -> /healthz /readyz /metrics                      (open, unlimited)
 *             -> /v1    [audit -> user key -> limit -> timeout -> json] rag + OpenAI routes
 *             -> /admin [audit -> admin key -> events stream, documents -> limit -> timeout -> json] admin routes
 *                (documents stream their progress and read raw uploads: before the timeout and the JSON parser)
 *             -> console static files -> 404 -> error handler
 *
 * Routing is case-sensitive (one spelling per route); whatever reaches a route of the /v1 or
 * /admin router went through that router's audit and key check first.
 */
export function createApp(deps: AppDeps): Express {
  const { config, metrics, lifecycle } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', 'loopback');
  app.set('case sensitive routing', true);
  app.set('strict routing', false);

  const limit = concurrencyLimit(config, metrics, lifecycle);
  const timeout = requestTimeout(config.requestTimeoutMs);
  const body = jsonBody(config.bodyLimit);
  const audit = deps.audit ? [deps.audit.middleware()] : [];

  const v1 = createRouter();
  v1.use(...audit, requireKey('user', config, metrics), limit, timeout, ...body);
  v1.use(ragRoutes(deps), openAiRoutes(deps));

  const admin = createRouter();
  admin.use(...audit, requireKey('admin', config, metrics));
  admin.use(adminEventRoutes(deps), documentRoutes(deps));
  admin.use(limit, timeout, ...body);
  admin.use(adminRoutes(deps));

  app.use(observe(metrics));
  app.use(healthRoutes(deps));
  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  });
  app.use('/v1', v1);
  app.use('/admin', admin);
  app.use(consoleRoutes());
  app.use(notFound);
  app.use(errorHandler(deps.logger, { runtimeDir: config.runtimeDir }));
  return app;
}
