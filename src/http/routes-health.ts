import type { Router } from 'express';
import { createRouter } from './router.js';
import type { AppDeps } from './context.js';
import { publicMessage } from './error-handler.js';

export function healthRoutes(deps: AppDeps): Router {
  const r = createRouter();
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', uptimeMs: Math.round(performance.now() - deps.lifecycle.startedAt) });
  });
  r.get('/readyz', (_req, res) => {
    const gen = deps.manager.current;
    const status = deps.manager.status();
    // Ready only while a generation serves and its store answers heartbeats (a hung child is not ready).
    const ready = deps.lifecycle.ready && !deps.lifecycle.draining && gen !== null && deps.manager.healthy;
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : deps.lifecycle.draining ? 'draining' : gen ? 'unhealthy' : 'starting',
      generation: gen?.id ?? null,
      model: gen ? { name: gen.model.name, id: gen.model.id, dimension: gen.model.dimension } : null,
      store: gen ? { version: gen.store.version, collection: gen.store.store.name, count: gen.store.count } : null,
      answerer: deps.rag.answererName,
      // Open to anyone: the message loses internal addresses and runtime paths.
      lastError: status.lastError?.error ? { ...status.lastError.error, message: publicMessage(status.lastError.error.message, deps.config.runtimeDir) } : null,
    });
  });
  return r;
}
