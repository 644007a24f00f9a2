import type { ErrorRequestHandler, RequestHandler } from 'express';
import { RagError, toRagError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
};

/** Unknown routes: a JSON 404 (405 for a known path with the wrong method is set per router). */
export const notFound: RequestHandler = (req, _res, next) => {
  next(new RagError('RAG_HTTP_NOT_FOUND', `no route for ${req.method} ${req.path}`));
};

/** Body-parser failures and our RagErrors become `{ error: { code, message, type } }`; never a stack. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let e: RagError;
    const bodyErr = err as { type?: string; status?: number; limit?: number };
    if (bodyErr?.type === 'entity.parse.failed') e = new RagError('RAG_HTTP_BAD_JSON', `the request body is not valid JSON: ${(err as Error).message}`, { cause: err });
    else if (bodyErr?.type === 'entity.too.large') e = new RagError('RAG_HTTP_BODY_TOO_LARGE', `the request body is larger than the limit (${bodyErr.limit} bytes)`, { cause: err });
    else if (bodyErr?.type === 'encoding.unsupported' || bodyErr?.type === 'charset.unsupported') e = new RagError('RAG_HTTP_UNSUPPORTED_MEDIA_TYPE', (err as Error).message, { cause: err });
    else if (bodyErr?.type && bodyErr.status && bodyErr.status < 500) e = new RagError('RAG_HTTP_VALIDATION', (err as Error).message, { cause: err, status: bodyErr.status });
    else e = toRagError(err);
    if (e.status >= 500) logger.error({ err: e, cause: e.cause, path: req.path, code: e.code }, 'request failed');
    else logger.debug({ code: e.code, path: req.path }, e.message);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e.status === 503 && !res.getHeader('Retry-After')) res.setHeader('Retry-After', '1');
    // Internal errors keep their detail in the log; the client gets the code and a plain message.
    const message = e.code === 'RAG_INTERNAL' ? 'internal error' : e.message;
    const param = typeof e.details?.param === 'string' ? { param: e.details.param } : {};
    res.status(e.status).json({ error: { code: e.code, message, type: OPENAI_TYPES[e.status] ?? (e.status >= 500 ? 'server_error' : 'invalid_request_error'), ...param } });
  };
}
