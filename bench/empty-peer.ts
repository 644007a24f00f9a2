/**
 * The ceiling: an Express 5 POST handler that parses the JSON body and answers at once.
 * `--same-server`: served by the service's own HTTP server (src/http/server.ts, requests born with
 * the app's prototypes) instead of Express's `app.listen`: the ceiling for the stack the service runs.
 */
import express from 'express';
import { parseArgs } from 'node:util';
import { createHttpServer } from '../src/http/server.js';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, 'same-server': { type: 'boolean', default: false } } });
const app = express();
app.use(express.json());
app.post('/v1/retrieve', (req, res) => {
  res.json({ sources: [], question: String(req.body?.question ?? '') });
});
const http = (values['same-server'] ? createHttpServer(app) : app).listen(Number(values.port), '127.0.0.1', () => {
  const addr = http.address();
  console.log(`empty-peer listening ${typeof addr === 'object' && addr ? addr.port : ''}`);
});
process.on('SIGTERM', () => http.close(() => process.exit(0)));
