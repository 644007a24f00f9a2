import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RagError, type ErrorCode } from './errors.js';

/**
 * The compiled script of a worker thread beside the calling module (`importMetaUrl`): its .js
 * sibling in dist/. Tests run the TypeScript sources, whose workers are the built ones in dist/.
 * A missing script fails with `code` (run npm run build).
 */
export function workerScript(importMetaUrl: string, name: string, code: ErrorCode): string {
  const here = fileURLToPath(importMetaUrl);
  const js = here.endsWith('.ts') ? here.replace(/\/src\/((?:[^/]+\/)*)[^/]+\.ts$/, `/dist/src/$1${name}.js`) : here.replace(/[^/]+\.js$/, `${name}.js`);
  if (!existsSync(js)) throw new RagError(code, `the ${name} script is missing: ${js} (run npm run build)`);
  return js;
}
