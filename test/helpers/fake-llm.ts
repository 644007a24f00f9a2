import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';

/**
 * A fake OpenAI-compatible upstream (the one thing tests fake: an external LLM server we do not
 * ship). It answers from a fixed script and records what it was sent.
 */
export async function startFakeLlm(options: { reply?: string; fail?: number; delayMs?: number } = {}) {
  const requests: Array<{ model: string; stream: boolean; messages: Array<{ role: string; content: string }> }> = [];
  const reply = options.reply ?? 'The Fresnel lens made the beams visible [1].';
  const app = express();
  app.use(express.json({ limit: '5mb' }));
  app.post('/v1/chat/completions', async (req, res) => {
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    requests.push({ model: req.body.model, stream: Boolean(req.body.stream), messages: req.body.messages });
    if (options.fail) {
      res.status(options.fail).json({ error: { message: 'upstream exploded', type: 'server_error' } });
      return;
    }
    const base = { id: 'up-1', created: 1, model: req.body.model };
    if (!req.body.stream) {
      res.json({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: reply }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
      return;
    }
    res.setHeader('content-type', 'text/event-stream');
    const words = reply.split(/(?<= )/);
    for (const w of words) res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: w }, finish_reason: null }] })}\n\n`);
    res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    reply,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
