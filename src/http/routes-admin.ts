import type { Router } from 'express';
import { createRouter } from './router.js';
import { RagError } from '../errors.js';
import type { ReloadEvent } from '../reload/reload-manager.js';
import type { AppDeps } from './context.js';
import { openEventStream } from './sse.js';

/** Reload control and status: status, force reload, rollback, and a server-sent event stream. */
export function adminRoutes(deps: AppDeps): Router {
  const r = createRouter();

  r.get('/status', (_req, res) => {
    res.json({ ...deps.manager.status(), answerer: deps.rag.answererName, draining: deps.lifecycle.draining });
  });

  r.post('/reload', async (_req, res) => {
    const attempt = await deps.manager.reload('admin', { force: true });
    if (!attempt) throw new RagError('RAG_SHUTTING_DOWN', 'the service is shutting down');
    res.status(attempt.outcome === 'rejected' ? 422 : 200).json({ attempt, active: deps.manager.current?.info() ?? null });
  });

  r.post('/rollback', async (_req, res) => {
    const attempt = await deps.manager.rollback();
    res.status(attempt.outcome === 'rejected' ? 422 : 200).json({ attempt, active: deps.manager.current?.info() ?? null });
  });

  return r;
}

/**
 * GET /admin/events: reload events as server-sent events. Mounted before the concurrency limit and
 * the request timeout (a stream is long-lived by design), after the admin key check.
 */
export function adminEventRoutes(deps: AppDeps): Router {
  const r = createRouter();
  r.get('/events', (req, res) => {
    const onEvent = (e: ReloadEvent) => stream.send(e.type, e);
    const stream = openEventStream(req, res, { onClose: () => deps.manager.off('event', onEvent) });
    stream.send('status', deps.manager.status());
    deps.manager.on('event', onEvent);
  });
  return r;
}
