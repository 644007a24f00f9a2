import { Router } from 'express';

/**
 * Every router of the app matches paths case-sensitively: `/V1/retrieve` is not `/v1/retrieve`
 * (404), so a path has one spelling for routing, auth and audit alike. A trailing slash still
 * matches (non-strict), and reaches the same route through the same checks.
 */
export function createRouter(): Router {
  return Router({ caseSensitive: true, strict: false });
}
