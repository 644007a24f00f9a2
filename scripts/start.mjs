// `npm start`: build when a TypeScript input changed (build-if-stale.mjs), then run the service in
// this same process, so a start on a built tree boots one node instead of two (the freshness check
// is a stat walk of the inputs, a few milliseconds). Source maps are on as with
// `node --enable-source-maps`: stack traces in logs point at src/*.ts.
import { buildIfStale } from './build-if-stale.mjs';

const status = buildIfStale();
if (status !== 0) process.exit(status);
process.setSourceMapsEnabled(true);
await import('../dist/src/main.js');
