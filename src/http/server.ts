import { createServer, IncomingMessage, ServerResponse, type Server } from 'node:http';
import type { Express } from 'express';

/** Node's request and response constructors are plain functions (not classes) on the versions we run. */
const callable = (f: unknown) => typeof f === 'function' && !/^class\b/.test(Function.prototype.toString.call(f));

/**
 * The HTTP server for an Express app, whose request and response objects are born with the app's
 * prototypes (`app.request`, `app.response`).
 *
 * Express 5's `app.handle` gives every request and response a new prototype
 * (`Object.setPrototypeOf(req, app.request)`). V8 then moves each object to another hidden class,
 * and the objects of every request survive the young-generation collections: an empty Express
 * handler at 700 req/s promoted ~6.4 MB/s to the old generation, a plain Node handler 0.1 MB/s.
 * Objects made here already have that prototype, so Express's call changes nothing: 0.64 MB/s, and
 * the empty handler's c=16 throughput went from ~5,700 to ~13,700 req/s (bench/results/swaps-2026-12-04-s7.md).
 * Everything else is stock Express (`app.handle` still runs). Where Node's constructors are classes
 * (they cannot be called this way), the server is Express's own `http.createServer(app)`.
 */
export function createHttpServer(app: Express): Server {
  if (!callable(IncomingMessage) || !callable(ServerResponse) || !app.request || !app.response) return createServer(app);
  // Whatever arguments Node passes (the socket; the request and its options) go through unchanged.
  const incoming = IncomingMessage as unknown as (this: unknown, ...args: unknown[]) => void;
  const outgoing = ServerResponse as unknown as (this: unknown, ...args: unknown[]) => void;
  function AppRequest(this: IncomingMessage, ...args: unknown[]): void {
    incoming.apply(this, args);
  }
  AppRequest.prototype = app.request;
  function AppResponse(this: ServerResponse, ...args: unknown[]): void {
    outgoing.apply(this, args);
  }
  AppResponse.prototype = app.response;
  return createServer({ IncomingMessage: AppRequest as unknown as typeof IncomingMessage, ServerResponse: AppResponse as unknown as typeof ServerResponse }, app);
}
