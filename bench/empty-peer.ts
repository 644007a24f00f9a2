/** The ceiling: an Express 5 POST handler that parses the JSON body and answers at once. */
import express from 'express';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const app = express();
app.use(express.json());
app.post('/v1/retrieve', (req, res) => {
  res.json({ sources: [], question: String(req.body?.question ?? '') });
});
const http = app.listen(Number(values.port), '127.0.0.1', () => {
  const addr = http.address();
  console.log(`empty-peer listening ${typeof addr === 'object' && addr ? addr.port : ''}`);
});
process.on('SIGTERM', () => http.close(() => process.exit(0)));
