import type { Router } from 'express';
import { createRouter } from './router.js';
import { leaseFor, type AppDeps } from './context.js';
import { normaliseFilter, parseBody, querySchema } from './schemas.js';
import { sendJson } from './json-response.js';

/** POST /v1/query (answer + sources) and POST /v1/retrieve (sources only). */
export function ragRoutes(deps: AppDeps): Router {
  const r = createRouter();
  const schema = querySchema(deps.config);

  r.post('/retrieve', async (req, res) => {
    const body = parseBody(schema, req.body);
    const gen = leaseFor(deps, req, res);
    const sources = await deps.rag.retrieve(gen, { question: body.question, k: body.k, filter: normaliseFilter(body.filter), mode: body.mode, contains: body.contains });
    sendJson(res, { sources, generation: generationRef(gen) });
  });

  r.post('/query', async (req, res) => {
    const body = parseBody(schema, req.body);
    const gen = leaseFor(deps, req, res);
    const result = await deps.rag.ask(gen, { question: body.question, k: body.k, filter: normaliseFilter(body.filter), mode: body.mode, contains: body.contains }, res.locals.signal as AbortSignal, {
      requestId: res.locals.requestId as string | undefined,
    });
    sendJson(res, { answer: result.answer, sources: result.sources, answerer: result.answerer, generation: generationRef(gen) });
  });
  return r;
}

export function generationRef(gen: import('../reload/generation.js').Generation) {
  return { id: gen.id, storeVersion: gen.store.version, model: gen.model.id };
}
