import { Agent, request } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/**
 * One HTTP request with the path sent exactly as given: no URL normalisation (fetch would resolve
 * dot segments, collapse nothing and re-encode), so tests can send what an attacker's socket sends.
 * `streamPeekMs`: for event streams, resolve with what arrived by then and close the socket.
 */
export function rawRequest(
  baseUrl: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; streamPeekMs?: number; timeoutMs?: number },
): Promise<RawResponse> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        method: options.method ?? 'GET',
        path: options.path,
        headers: { ...(options.body !== undefined ? { 'content-length': String(Buffer.byteLength(options.body)) } : {}), ...options.headers },
        agent: options.streamPeekMs ? false : agent,
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', done);
        res.on('error', reject);
        if (options.streamPeekMs && String(res.headers['content-type']).startsWith('text/event-stream')) {
          setTimeout(() => {
            done();
            req.destroy();
          }, options.streamPeekMs);
        }
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 30_000} ms for ${options.method ?? 'GET'} ${options.path}`)));
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export function closeRawAgent(): void {
  agent.destroy();
}
