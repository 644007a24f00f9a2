import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { percentile } from './load.js';

export interface OpenLoadResult {
  rate: number;
  durationS: number;
  sent: number;
  ok: number;
  failed: number;
  failures: Record<string, number>;
  p50: number;
  p99: number;
  max: number;
  /** The load generator's own longest event-loop delay (ms): its stalls are in its latencies too. */
  generatorLoopMaxMs: number;
  /** The generator's niceness (it may run in a child process of its own: runOpenLoadInChild). */
  generatorNice: number;
  /** Every latency, bucketed (latencyBucket): windows of one kind are pooled with pooledPercentile. */
  histogram: Record<string, number>;
}

/**
 * A latency's bucket: 0.05 ms wide below 100 ms, 1 ms wide above. Fine enough for a p99 of a few
 * ms, and a window's histogram stays a few hundred entries however many requests it sent.
 */
export function latencyBucket(ms: number): number {
  return ms < 100 ? Math.floor(ms * 20) : 2000 + Math.floor(ms - 100);
}

/** Latencies (ms) as a histogram of latencyBucket counts. */
export function latencyHistogram(latencies: readonly number[]): Record<string, number> {
  const h: Record<string, number> = {};
  for (const ms of latencies) h[latencyBucket(ms)] = (h[latencyBucket(ms)] ?? 0) + 1;
  return h;
}

/** The upper edge (ms) of a bucket. */
function bucketTop(b: number): number {
  return b < 2000 ? (b + 1) / 20 : 100 + (b - 2000) + 1;
}

/**
 * The p-th percentile of several windows' latencies taken together (their histograms summed), to
 * bucket resolution: the p99 of every request sent during swaps, not a median of per-window p99s,
 * where one window's stall decides the figure when there are only two.
 */
export function pooledPercentile(histograms: Array<Record<string, number>>, p: number): number {
  const sum = new Map<number, number>();
  let total = 0;
  for (const h of histograms) for (const [b, n] of Object.entries(h)) (sum.set(Number(b), (sum.get(Number(b)) ?? 0) + n), (total += n));
  if (total === 0) return NaN;
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (const b of [...sum.keys()].sort((x, y) => x - y)) {
    seen += sum.get(b)!;
    if (seen >= rank) return Math.round(bucketTop(b) * 100) / 100;
  }
  return NaN;
}

export interface OpenLoadOptions {
  url: string;
  route: string;
  body: unknown;
  rate: number;
  durationS: number;
  timeoutMs?: number;
}

/** Niceness of this process (Linux; 0 elsewhere). */
function ownNice(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  } catch {
    return 0;
  }
}

/**
 * Open-model load: requests are sent on a fixed schedule (rate per second) whatever the
 * responses do, and each latency is measured from its scheduled send time, so a stall shows
 * up in full (no coordinated omission). A request still unanswered after `timeoutMs` fails.
 */
export async function runOpenLoad(options: OpenLoadOptions): Promise<OpenLoadResult> {
  const u = new URL(options.route, options.url);
  const payload = Buffer.from(JSON.stringify(options.body));
  // Idle sockets are closed by this client after 4 s, before the service's 5 s keep-alive timeout:
  // Node 20's agent ignores the server's `Keep-Alive: timeout=5` hint without a timeout of its own,
  // so after a latency spike had opened many sockets, one the server was closing at that moment
  // could be reused and the request failed with ECONNRESET (13 of one CI run's requests; the
  // keep-alive race of nodejs/node#52649). A well-configured client closes first.
  const agent = new Agent({ keepAlive: true, maxSockets: 512, timeout: 4_000 });
  const total = Math.round(options.rate * options.durationS);
  const interval = 1000 / options.rate;
  const lat: number[] = [];
  let ok = 0;
  let failed = 0;
  /** Why requests failed: "HTTP 503 RAG_..." or the socket error code (ECONNRESET, timeout), with counts. */
  const failures: Record<string, number> = {};
  const note = (why: string) => (failures[why] = (failures[why] ?? 0) + 1);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const t0 = performance.now();
  const inflight: Array<Promise<void>> = [];
  const send = (scheduled: number) =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': payload.length }, timeout: options.timeoutMs ?? 10_000 },
        (res) => {
          const chunks: Buffer[] = [];
          if (res.statusCode === 200) res.resume();
          else res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            lat.push(performance.now() - scheduled);
            if (res.statusCode === 200) ok++;
            else {
              failed++;
              const code = /"code":"([A-Z_]+)"/.exec(Buffer.concat(chunks).toString('utf8'))?.[1] ?? '';
              note(`HTTP ${res.statusCode}${code ? ` ${code}` : ''}`);
            }
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => {
        failed++;
        note(err.code ?? err.message);
        lat.push(performance.now() - scheduled);
        resolve();
      });
      req.end(payload);
    });
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && t0 + sent * interval <= now) {
        inflight.push(send(t0 + sent * interval));
        sent++;
      }
      if (sent >= total) resolve();
      else setTimeout(tick, Math.max(0, Math.min(5, t0 + sent * interval - performance.now())));
    };
    tick();
  });
  await Promise.all(inflight);
  loop.disable();
  agent.destroy();
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    rate: options.rate,
    durationS: options.durationS,
    sent,
    ok,
    failed,
    failures,
    p50: r(percentile(lat, 50)),
    p99: r(percentile(lat, 99)),
    max: r(Math.max(...lat)),
    generatorLoopMaxMs: r(loop.max / 1e6),
    generatorNice: ownNice(),
    histogram: latencyHistogram(lat),
  };
}

/**
 * The same load from a process of its own started at niceness `nice` (`nice -n`; below 0 needs
 * root, and a generator that could not get it says so in generatorNice). On this 2-core machine a
 * generator inside the bench process shares its event loop with the bench's own work (the
 * publisher's copies) and its CPU with the service's swap: its stalls then count as the
 * service's latency. A client on another machine has none of that; a generator of its own at a
 * higher priority comes closer to it, and its loop max shows what remains.
 */
export async function runOpenLoadInChild(options: OpenLoadOptions, nice: number): Promise<OpenLoadResult> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn('nice', ['-n', String(nice), process.execPath, script, '--open-load-child', JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`the load generator process exited with ${code}: ${out.slice(-500)}`);
  return JSON.parse(out.trim().split('\n').pop()!) as OpenLoadResult;
}

if (process.argv[2] === '--open-load-child') {
  runOpenLoad(JSON.parse(process.argv[3]!) as OpenLoadOptions).then(
    (result) => console.log(JSON.stringify(result)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
