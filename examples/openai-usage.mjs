// node examples/openai-usage.mjs [base URL]   (the service running: npm start)
// The official openai SDK against the service: usage, the streamed usage chunk, a refused parameter.
import OpenAI from 'openai';

const client = new OpenAI({ baseURL: process.argv[2] ?? 'http://127.0.0.1:8080/v1', apiKey: process.env.API_KEY ?? 'unused' });
const messages = [{ role: 'user', content: 'How do retries back off?' }];

const res = await client.chat.completions.create({ model: 'rag', messages, max_tokens: 12 });
console.log('answer:', JSON.stringify(res.choices[0].message.content), 'finish:', res.choices[0].finish_reason, 'usage:', res.usage);

const stream = await client.chat.completions.create({ model: 'rag', messages, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) if (chunk.usage) console.log('stream usage chunk:', chunk.usage);

try {
  await client.chat.completions.create({ model: 'rag', messages, response_format: { type: 'json_object' } });
} catch (err) {
  console.log('refused:', err.status, err.code, err.param);
}
