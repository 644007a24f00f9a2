import type { RequestHandler } from 'express';
import { RagError } from '../../errors.js';

/** A request still running after `ms` gets 503 RAG_HTTP_TIMEOUT (a started stream is ended). */
export function requestTimeout(ms: number): RequestHandler {
  return (_req, res, next) => {
    const timer = setTimeout(() => {
      if (res.writableEnded) return;
      if (!res.headersSent) next(new RagError('RAG_HTTP_TIMEOUT', `the request took longer than ${ms} ms`));
      else res.end();
    }, ms);
    timer.unref();
    res.once('close', () => clearTimeout(timer));
    next();
  };
}
