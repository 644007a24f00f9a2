import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Router } from 'express';
import { createRouter } from './router.js';

/**
 * The project root: the nearest folder above this module that holds package.json. Works from
 * src/http (vitest, tsx) and from dist/src/http (after tsc), since tsc does not copy the
 * console's static files into dist/.
 */
export function projectRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}: cannot locate the web console files`);
    dir = parent;
  }
}

/** Where the console's index.html, the ES modules and style.css live. */
export function consolePublicDir(): string {
  return join(projectRoot(), 'src', 'http', 'public');
}

/** Same-origin only: the page loads its own script and style and talks to this service only. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The web console: static files served at `/` (GET / answers index.html). */
export function consoleRoutes(): Router {
  const r = createRouter();
  r.use(
    express.static(consolePublicDir(), {
      index: 'index.html',
      redirect: false,
      dotfiles: 'ignore',
      fallthrough: true,
      setHeaders(res) {
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('Referrer-Policy', 'no-referrer');
        res.setHeader('Content-Security-Policy', CSP);
      },
    }),
  );
  return r;
}
