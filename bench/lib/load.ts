import autocannon from 'autocannon';

export interface LoadResult {
  route: string;
  connections: number;
  durationS: number;
  requests: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  errors: number;
  non2xx: number;
  timeline?: Array<[number, number, number]>; // [ms since start, latency ms, status]
}

export async function runLoad(options: {
  url: string;
  route: string;
  body: unknown;
  connections: number;
  durationS?: number;
  /** Keep running until stop() is called (for the reload scenario). */
  untilStopped?: boolean;
  timeline?: boolean;
  onStart?: (stop: () => void) => void;
}): Promise<LoadResult> {
  const timeline: Array<[number, number, number]> = [];
  const t0 = Date.now();
  const instance = autocannon({
    url: `${options.url}${options.route}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(options.body),
    connections: options.connections,
    duration: options.untilStopped ? 3600 : (options.durationS ?? 5),
    timeout: 30,
  }) as unknown as PromiseLike<autocannon.Result> & { on(event: 'response', fn: (...args: any[]) => void): void; stop(): void };
  if (options.timeline) {
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      timeline.push([Date.now() - t0, Math.round(responseTime * 100) / 100, statusCode]);
    });
  }
  options.onStart?.(() => instance.stop());
  const r = await instance;
  const durationS = (Date.now() - t0) / 1000;
  return {
    route: options.route,
    connections: options.connections,
    durationS: Math.round(durationS * 10) / 10,
    requests: r.requests.total,
    rps: Math.round(r.requests.total / durationS),
    p50: r.latency.p50,
    p90: r.latency.p90,
    p99: r.latency.p99,
    max: r.latency.max,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    ...(options.timeline ? { timeline } : {}),
  };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
