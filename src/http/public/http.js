// @ts-check
// Talking to the service: the access keys, requests with the right key, and API errors in plain words.
/** @import { Message } from './dom.js' */
/** @import { ErrorBody } from './wire.js' */

/** @typedef {'api' | 'admin'} KeyKind */

/** The keys in use (set by keys.js). An API request falls back to the admin key, which also passes /v1. */
export const keys = { api: '', admin: '' };

/**
 * @param {KeyKind} kind
 * @returns {Record<string, string>}
 */
function authHeaders(kind) {
  const key = kind === 'admin' ? keys.admin : keys.api || keys.admin;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The service could not be reached (or the connection broke). */
export class NetworkError extends Error {}

/**
 * @typedef {object} RequestOptions
 * @property {string} [method]
 * @property {unknown} [body] sent as JSON
 * @property {Blob} [raw] sent as it is (a file upload), with its own type
 * @property {KeyKind} [kind] which key to send (default: the API key)
 * @property {string} [accept] default: application/json
 * @property {AbortSignal} [signal]
 */

/**
 * fetch with the right key; a failure to reach the service becomes a NetworkError (an abort stays
 * an AbortError).
 * @param {string} path
 * @param {RequestOptions} [opts]
 * @returns {Promise<Response>}
 */
export async function request(path, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: opts.accept ?? 'application/json', ...authHeaders(opts.kind ?? 'api') };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.raw !== undefined) headers['Content-Type'] = opts.raw.type || 'application/octet-stream';
  try {
    return await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
      signal: opts.signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new NetworkError(errorText(err));
  }
}

/** @param {unknown} err */
export function isAbort(err) {
  return err instanceof DOMException && err.name === 'AbortError';
}

/** @param {unknown} err */
export function errorText(err) {
  return err instanceof Error ? err.message : String(err);
}

/**
 * What was thrown, as an Error (a NetworkError stays one, for describeError).
 * @param {unknown} err
 * @returns {Error}
 */
export function asError(err) {
  return err instanceof Error ? err : new Error(String(err));
}

/** @typedef {{ status: number, code: string, message: string, retryAfter: string | null }} ApiError */

/**
 * The API's `{ error: { code, message } }`, or something close when the body is not that.
 * @param {Response} res
 * @returns {Promise<ApiError>}
 */
export async function apiError(res) {
  const text = await res.text().catch(() => '');
  let code = `HTTP_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const body = /** @type {ErrorBody | null} */ (JSON.parse(text));
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
  } catch {
    if (text && text.length < 300) message = text;
  }
  return { status: res.status, code, message, retryAfter: res.headers.get('Retry-After') };
}

/**
 * A message for a person: what happened and what to do about it.
 * @param {ApiError | Error} err
 * @param {KeyKind} kind
 * @returns {Message}
 */
export function describeError(err, kind) {
  if (err instanceof NetworkError) {
    return { title: 'Network error', detail: `The service could not be reached (${err.message}). Check that it is running and try again.` };
  }
  if (err instanceof Error) return { title: 'Error', detail: err.message };
  const { status, code, message } = err;
  const which = kind === 'admin' ? 'admin key' : 'API key';
  switch (true) {
    case status === 429:
      return { title: 'Too many requests, retry shortly.', detail: `${message}${err.retryAfter ? ` (retry after ${err.retryAfter} s)` : ''}`, code };
    case status === 401:
      return { title: 'Not authorised (401).', detail: `${message}. Enter a valid ${which} under “Access keys”.`, code };
    case status === 403:
      return { title: 'Forbidden (403).', detail: `${message}.${kind === 'admin' ? ' Use the admin key for this.' : ''}`, code };
    case status === 503 && code === 'RAG_NOT_READY':
      return { title: 'The service is not ready yet.', detail: `${message}. No generation is serving; try again once a store has been loaded.`, code };
    case status === 503:
      return { title: 'Service unavailable (503).', detail: message, code };
    case code === 'RAG_DOCS_READ_ONLY':
      return { title: 'The store is read-only here.', detail: message, code };
    case status === 400 || status === 413 || status === 415 || status === 422:
      return { title: 'The request was not accepted.', detail: message, code };
    default:
      return { title: `Request failed (${status}).`, detail: message, code };
  }
}
