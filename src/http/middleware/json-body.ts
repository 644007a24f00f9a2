import type { IncomingMessage } from 'node:http';
import express, { type RequestHandler } from 'express';
import { RagError } from '../../errors.js';

/** Deepest JSON nesting accepted in a request body (objects and arrays). */
export const MAX_JSON_DEPTH = 32;

/**
 * Nesting depth of JSON text, scanned byte by byte before it is parsed (so a body nested 100,000
 * deep costs one linear pass, never a recursion). Brackets inside strings do not count.
 */
export function jsonDepth(buf: Uint8Array, stopAbove = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) {
        max = depth;
        if (max > stopAbove) return max;
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The path of the first string (value or key) holding a lone UTF-16 surrogate, or null. */
export function findLoneSurrogate(value: unknown): string | null {
  const stack: Array<[unknown, string]> = [[value, '']];
  while (stack.length) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return path || '(body)';
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push([item, path ? `${path}.${i}` : String(i)]));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        const p = path ? `${path}.${k}` : k;
        if (LONE_SURROGATE.test(k)) return p;
        stack.push([item, p]);
      }
    }
  }
  return null;
}

/** Keeps the raw bytes (the audit log records bodies that fail to parse) and refuses deep nesting. */
function verify(req: IncomingMessage, _res: unknown, buf: Buffer): void {
  (req as IncomingMessage & { rawBody?: Buffer }).rawBody = buf;
  if (jsonDepth(buf, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new RagError('RAG_HTTP_TOO_DEEP', `the JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
}

/** JSON bodies for the API routers: size-capped, depth-capped, well-formed Unicode only. */
export function jsonBody(limit: string): RequestHandler[] {
  const parse = express.json({ limit, type: ['application/json', 'application/*+json'], verify });
  const unicode: RequestHandler = (req, _res, next) => {
    if (req.body === undefined || req.body === null || typeof req.body !== 'object') return next();
    const at = findLoneSurrogate(req.body);
    if (at) return next(new RagError('RAG_HTTP_INVALID_UNICODE', `${at}: contains a lone UTF-16 surrogate (not valid Unicode text)`));
    next();
  };
  return [parse, unicode];
}
