import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** All service metrics on one registry per service instance (tests run several side by side). */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'rag_process_' });
  const m = {
    registry,
    httpRequests: new Counter({
      name: 'rag_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'rag_http_request_duration_seconds',
      help: 'HTTP request latency by route and status',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    httpInflight: new Gauge({ name: 'rag_http_inflight_requests', help: 'Requests being served now', registers: [registry] }),
    httpRejected: new Counter({
      name: 'rag_http_rejected_total',
      help: 'Requests refused before work (limit, auth, size, shutdown)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    reloads: new Counter({
      name: 'rag_reloads_total',
      help: 'Reload attempts by outcome (accepted, rejected, superseded, unchanged, rolled_back)',
      labelNames: ['outcome', 'code'] as const,
      registers: [registry],
    }),
    reloadDuration: new Histogram({
      name: 'rag_reload_duration_seconds',
      help: 'Time to validate and build a generation',
      labelNames: ['outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers: [registry],
    }),
    generationInfo: new Gauge({
      name: 'rag_generation_info',
      help: 'The active generation (value 1) with its model and store version',
      labelNames: ['generation', 'model', 'store_version'] as const,
      registers: [registry],
    }),
    generationsLive: new Gauge({ name: 'rag_generations_live', help: 'Generations alive (active, standby, draining)', registers: [registry] }),
    chromaRestarts: new Counter({ name: 'rag_chroma_restarts_total', help: 'Chroma child restarts after a crash', registers: [registry] }),
    auditDropped: new Counter({ name: 'rag_audit_dropped_total', help: 'Audit lines dropped because the writer fell behind', registers: [registry] }),
    embedBatchSize: new Histogram({
      name: 'rag_embedding_batch_size',
      help: 'Texts per model call from the query micro-batcher',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
  };
  // Event-loop delay at 1 ms resolution: the swap goal is no stall over 20 ms. Max and
  // quantiles cover the time since the previous scrape (the histogram resets on each scrape);
  // the all-time max never resets.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  let allTimeMax = 0;
  const sec = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0);
  new Gauge({
    name: 'rag_event_loop_delay_seconds',
    help: 'Event-loop delay since the previous scrape (quantile label; max is the largest single stall)',
    labelNames: ['quantile'] as const,
    registers: [registry],
    collect() {
      allTimeMax = Math.max(allTimeMax, loop.max);
      this.set({ quantile: '0.5' }, sec(loop.percentile(50)));
      this.set({ quantile: '0.99' }, sec(loop.percentile(99)));
      this.set({ quantile: 'max' }, sec(loop.max));
      loop.reset();
    },
  });
  new Gauge({
    name: 'rag_event_loop_delay_max_seconds',
    help: 'Largest event-loop stall since the service started',
    registers: [registry],
    collect() {
      allTimeMax = Math.max(allTimeMax, loop.max);
      this.set(sec(allTimeMax));
    },
  });
  return { ...m, eventLoopDelay: loop };
}

export type Metrics = ReturnType<typeof createMetrics>;
