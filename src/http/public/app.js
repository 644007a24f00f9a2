// @ts-check
// RAG console: ask questions (streamed answers with citations), watch the active generation and the
// reload timeline, and trigger reload / rollback. Plain ES modules served as they are: no build
// step, no framework; `npm run typecheck` checks them (tsconfig.console.json).
//
//   app.js        this entry: wires the page and starts it
//   ask.js        the question form and the streamed answer; citations.js its [n] links
//   status.js     the active generation panel and the service state
//   timeline.js   the reload timeline from GET /admin/events
//   admin.js      the reload and rollback buttons
//   documents.js  the documents of the served version: upload and delete (admin)
//   keys.js       the access keys (sessionStorage)
//   http.js       requests with the right key, API errors in plain words; sse.js reads event streams
//   dom.js        the page's elements and DOM helpers; wire.js the service's JSON shapes (types only)
import { initAdmin } from './admin.js';
import { initAsk } from './ask.js';
import { initDocuments } from './documents.js';
import { initKeys, loadKeys } from './keys.js';
import { initStatus, refreshStatus } from './status.js';
import { followEvents } from './timeline.js';

initAsk();
initStatus();
initAdmin();
initDocuments();
initKeys();

loadKeys();
void refreshStatus();
void followEvents();
