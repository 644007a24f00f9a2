import type { ErrorRequestHandler, RequestHandler } from 'express';
import { type ErrorCode, RagError, toRagError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  431: 'invalid_request_error',
};

/** The JSON error body every error response has (the HTTP layer's one shape). */
export function errorBody(status: number, code: ErrorCode | string, message: string, extra: { param?: string } = {}) {
  return { error: { code, message, type: OPENAI_TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), ...extra } };
}

/** Unknown routes: a JSON 404. */
export const notFound: RequestHandler = (req, _res, next) => {
  const path = req.path.length > 200 ? `${req.path.slice(0, 200)}...` : req.path;
  next(new RagError('RAG_HTTP_NOT_FOUND', `no route for ${req.method.slice(0, 16)} ${path}`));
};

const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const URL_TEXT = /\b(?:https?|wss?):\/\/[^\s'")<>\]]+/gi;
const HOST_PORT = /\b(?:localhost|(?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-f:]+\]):\d{1,5}\b/gi;

/**
 * What a client may read of an error message: no internal URLs or ports (Chroma children, the
 * upstream), no paths inside the runtime folder (private snapshots), no collection UUIDs. The log
 * keeps the full text.
 */
export function publicMessage(message: string, runtimeDir: string): string {
  let m = message;
  if (runtimeDir) m = m.split(runtimeDir).join('<runtime>');
  return m.replace(URL_TEXT, '<internal url>').replace(HOST_PORT, '<internal address>').replace(UUID, '<id>');
}

/** A third-party HTTP error (http-errors: body-parser, the router, serve-static) as a RagError. */
function fromHttpError(err: Error & { type?: string; status?: number; statusCode?: number; limit?: number; code?: string }): RagError | null {
  const status = err.status ?? err.statusCode;
  if (err.type === 'entity.parse.failed') return new RagError('RAG_HTTP_BAD_JSON', `the request body is not valid JSON: ${err.message}`, { cause: err });
  if (err.type === 'entity.too.large') return new RagError('RAG_HTTP_BODY_TOO_LARGE', `the request body is larger than the limit (${err.limit} bytes)`, { cause: err });
  if (err.type === 'encoding.unsupported' || err.type === 'charset.unsupported') return new RagError('RAG_HTTP_UNSUPPORTED_MEDIA_TYPE', err.message, { cause: err });
  if (err.type === 'request.aborted') return new RagError('RAG_HTTP_BAD_REQUEST', 'the request was aborted by the client', { cause: err });
  if (typeof status !== 'number' || status < 400 || status >= 500) return null;
  // Invalid gzip/deflate/brotli bodies: zlib's errors carry Z_* codes (or ERR_* from brotli).
  if (typeof err.code === 'string' && /^(Z_|ERR__?ZLIB|ERR_BROTLI)/.test(err.code)) {
    return new RagError('RAG_HTTP_BAD_ENCODING', 'the request body could not be decompressed (invalid Content-Encoding data)', { cause: err });
  }
  const byStatus: Record<number, ErrorCode> = {
    400: 'RAG_HTTP_BAD_REQUEST',
    401: 'RAG_HTTP_UNAUTHORIZED',
    403: 'RAG_HTTP_FORBIDDEN',
    404: 'RAG_HTTP_NOT_FOUND',
    405: 'RAG_HTTP_METHOD_NOT_ALLOWED',
    413: 'RAG_HTTP_BODY_TOO_LARGE',
    415: 'RAG_HTTP_UNSUPPORTED_MEDIA_TYPE',
    431: 'RAG_HTTP_HEADERS_TOO_LARGE',
  };
  const code = byStatus[status] ?? 'RAG_HTTP_BAD_REQUEST';
  const message = status === 404 ? 'not found' : err.message || 'bad request';
  return new RagError(code, message, { cause: err, status });
}

/** Body-parser failures and our RagErrors become `{ error: { code, message, type } }`; never a stack. */
export function errorHandler(logger: Logger, options: { runtimeDir?: string } = {}): ErrorRequestHandler {
  const runtimeDir = options.runtimeDir ?? '';
  return (err, req, res, _next) => {
    const e = err instanceof RagError ? err : (fromHttpError(err as Error) ?? toRagError(err));
    if (e.status >= 500) logger.error({ err: e, cause: e.cause, path: req.path, code: e.code }, 'request failed');
    else logger.debug({ code: e.code, path: req.path }, e.message);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (e.status === 503 && !res.getHeader('Retry-After')) res.setHeader('Retry-After', '1');
    // Internal errors keep their detail in the log; the client gets the code and a plain message.
    const message = e.code === 'RAG_INTERNAL' ? 'internal error' : publicMessage(e.message, runtimeDir);
    const param = typeof e.details?.param === 'string' ? { param: e.details.param } : {};
    res.status(e.status).json(errorBody(e.status, e.code, message, param));
  };
}
