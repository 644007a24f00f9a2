import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { startTestService, type TestService } from './harness.js';

/**
 * A fake OpenAI-compatible upstream (the one thing tests fake: an external LLM server we do not
 * ship). It answers from a fixed script and records what it was sent.
 */
export async function startFakeLlm(options: { reply?: string; fail?: number; delayMs?: number; usage?: { prompt_tokens: number; completion_tokens: number } | null } = {}) {
  const requests: Array<{ model: string; stream: boolean; messages: Array<{ role: string; content: string }>; body: Record<string, any>; headers: Record<string, unknown> }> = [];
  const usageFor = () => {
    const u = options.usage === undefined ? { prompt_tokens: 1, completion_tokens: 1 } : options.usage;
    return u ? { ...u, total_tokens: u.prompt_tokens + u.completion_tokens } : undefined;
  };
  const reply = options.reply ?? 'The Fresnel lens made the beams visible [1].';
  /** Requests received, and those whose connection closed before the answer was sent (the caller gave up). */
  const calls = { received: 0, closedEarly: 0 };
  const app = express();
  app.use(express.json({ limit: '5mb' }));
  app.post('/v1/chat/completions', async (req, res) => {
    calls.received++;
    res.on('close', () => {
      if (!res.writableEnded) calls.closedEarly++;
    });
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
    requests.push({ model: req.body.model, stream: Boolean(req.body.stream), messages: req.body.messages, body: req.body, headers: req.headers });
    if (options.fail) {
      res.status(options.fail).json({ error: { message: 'upstream exploded', type: 'server_error' } });
      return;
    }
    const base = { id: 'up-1', created: 1, model: req.body.model };
    // Like an OpenAI server: tools -> a tool call; n -> n choices; logprobs -> per-token logprobs;
    // response_format json_object -> a JSON answer.
    const tool = Array.isArray(req.body.tools) ? req.body.tools[0]?.function?.name : undefined;
    const toolCalls = tool ? [{ id: 'call_1', type: 'function', function: { name: tool, arguments: '{"query":"lens"}' } }] : undefined;
    const content = tool ? null : req.body.response_format?.type === 'json_object' ? JSON.stringify({ answer: reply }) : reply;
    const logprobs = req.body.logprobs ? { content: [{ token: 'The', logprob: -0.25, bytes: [84, 104, 101], top_logprobs: [] }], refusal: null } : null;
    const usage = usageFor();
    if (!req.body.stream) {
      const choices = Array.from({ length: req.body.n ?? 1 }, (_, index) => ({
        index,
        message: { role: 'assistant', content: content && index > 0 ? `${content} (${index})` : content, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
        finish_reason: toolCalls ? 'tool_calls' : 'stop',
        logprobs,
      }));
      res.json({ ...base, object: 'chat.completion', choices, ...(usage ? { usage } : {}) });
      return;
    }
    res.setHeader('content-type', 'text/event-stream');
    // Like OpenAI and vLLM, the first chunk names the role (LangChain needs it to read tool calls).
    res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })}\n\n`);
    const words = content === null ? [] : content.split(/(?<= )/);
    for (const w of words) res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: w }, finish_reason: null }] })}\n\n`);
    if (toolCalls) {
      const delta = { tool_calls: toolCalls.map((t, index) => ({ index, ...t })) };
      res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`);
    }
    res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: toolCalls ? 'tool_calls' : 'stop' }] })}\n\n`);
    if (req.body.stream_options?.include_usage && usage) res.write(`data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', choices: [], usage })}\n\n`);
    res.end('data: [DONE]\n\n');
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    calls,
    reply,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export type FakeLlm = Awaited<ReturnType<typeof startFakeLlm>>;

/** A fake upstream and a real service answering through it (LLM_BASE_URL); `stop` ends both. */
export async function startServiceWithFakeLlm(
  llmOptions: Parameters<typeof startFakeLlm>[0] = {},
  env: Record<string, string> = {},
): Promise<{ llm: FakeLlm; svc: TestService; stop: () => Promise<void> }> {
  const llm = await startFakeLlm(llmOptions);
  try {
    const svc = await startTestService({ env: { LLM_BASE_URL: llm.url, ...env } });
    return { llm, svc, stop: async () => void (await svc.stop(), await llm.close()) };
  } catch (err) {
    await llm.close();
    throw err;
  }
}
