import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Config } from './config.js';
import { createApp, type Lifecycle } from './http/app.js';
import { errorBody } from './http/error-handler.js';
import { createHttpServer } from './http/server.js';
import { AuditLog } from './observability/audit-log.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { RagService } from './rag/rag-service.js';
import { ReloadManager } from './reload/reload-manager.js';
import { prepareChromaStandby } from './store/chroma-server.js';
import { resolveChromaRuntime } from './store/chroma-runtime.js';
import { loadChromaClient } from './store/chroma-store.js';
import { cleanStaleSnapshots, LOADER_NICE } from './store/store-version.js';
import { startSpawner } from './store/spawner.js';
import { PointerEvents, PointerWatcher } from './watch/pointer-watcher.js';
import { sharedRegistryFor } from './reload/source.js';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { CURRENT_FILE } from './store/layout.js';
import { FileWatcher, WatchEvents, type WatchProblem } from './watch/file-watcher.js';

export interface Service {
  readonly config: Config;
  readonly manager: ReloadManager;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly lifecycle: Lifecycle;
  readonly watcher: FileWatcher | null;
  /** The base URL once listening. */
  url: string;
  start(): Promise<string>;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  logger?: Logger;
  metrics?: Metrics;
}

/**
 * The service in start order: config -> model + store (first generation, warmed by its probe
 * query) -> watcher -> listen. stop() is idempotent: stop accepting, drain, close the watcher,
 * dispose generations (Chroma children included).
 */
export function createService(config: Config, options: ServiceOptions = {}): Service {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const metrics = options.metrics ?? createMetrics();
  const lifecycle: Lifecycle = { ready: false, draining: false, startedAt: performance.now(), readyAt: null };
  const manager = new ReloadManager(config, logger, metrics);
  const audit = config.auditLogDir !== 'off'
    ? new AuditLog({
        dir: config.auditLogDir,
        maxSize: config.auditMaxSize,
        interval: config.auditInterval,
        maxFiles: config.auditMaxFiles,
        compress: true,
        bodyMaxBytes: config.auditBodyMaxBytes,
        logger,
        onDrop: () => metrics.auditDropped.inc(),
      })
    : null;
  const rag = new RagService(config, { onUpstreamCall: (call) => audit?.upstream({ ...call }) });
  const app = createApp({ config, manager, rag, metrics, logger, lifecycle, audit });
  let server: Server | undefined;
  let watcher: FileWatcher | null = null;
  let pointerWatcher: PointerWatcher | null = null;
  let stopPromise: Promise<void> | undefined;
  const sockets = new Set<Socket>();

  const service: Service = {
    config,
    manager,
    metrics,
    logger,
    lifecycle,
    get watcher() {
      return watcher;
    },
    url: '',
    async start() {
      // Fork the process that starts Chroma children now, while this one is small (spawner.ts).
      startSpawner();
      // Refuse at once (a clear start-up error) if another instance writes this audit folder.
      await audit?.open();
      const stale = await cleanStaleSnapshots(config.runtimeDir).catch((err: unknown) => {
        logger.warn({ err }, 'could not clean stale snapshots');
        return { removed: 0, killed: [] as number[] };
      });
      if (stale.removed || stale.killed.length) logger.warn(stale, 'removed snapshots of a previous run (and killed its orphaned Chroma children)');
      // The chromadb client library loaded before serving, while the first generation builds (its threads
      // and children do that work; this thread mostly waits): a first version that needs no Chroma server
      // would otherwise leave it to the first swap that does, stalling requests ~30-40 ms (chroma-store.ts).
      const clientLoaded = new Promise<void>((resolve) =>
        setImmediate(() => {
          try {
            loadChromaClient();
          } catch (err) {
            logger.warn({ err }, 'could not load the chromadb client library');
          }
          resolve();
        }),
      );
      try {
        const gen = await manager.start();
        logger.info({ generation: gen.id, model: gen.model.id, store: gen.store.version, chunks: gen.store.count }, 'first generation ready');
      } catch (err) {
        if (!config.waitForStore || !config.watch) throw err;
        // Serve 503 RAG_NOT_READY with the reason, and take the first good store the watcher sees.
        logger.error({ code: (err as { code?: string }).code, err: (err as Error).message }, 'no generation to serve yet; waiting for a valid model and store');
      }
      // Resolved before serving (once per process): its first call reads the process report, which
      // blocks the event loop (chroma-runtime.ts); a version that ships serving-index.bin would
      // otherwise first pay it at a swap, for the next loader child's standby.
      if (!config.chromaUrl) await resolveChromaRuntime().catch(() => undefined);
      await clientLoaded;
      if (config.watch) {
        watcher = new FileWatcher({
          roots: config.chromaUrl ? [config.modelsDir] : [config.vectorstoreDir, config.modelsDir],
          logger,
          debounceMs: config.watchDebounceMs,
          stabilityMs: config.watchStabilityMs,
          polling: config.watchPolling,
          rescanMs: config.watchRescanMs,
          // A versioned store's pointer flip is a finished write: it reloads without the stability wait.
          ...(config.chromaUrl ? {} : { commitFiles: [join(config.vectorstoreDir, CURRENT_FILE)] }),
        });
        // Watcher problems (link loops, unreadable entries) never crash: counted and shown in the status.
        watcher.on(WatchEvents.problem, (p: WatchProblem) => manager.noteWatchProblem(p));
        // A store folder being written: warm a loader child now, so the reload that follows starts it warm
        // (a version folder is usually copied before CURRENT flips). Fire and forget; it expires unused.
        // Not while a reload runs: its build adopts the standby, and the late events of the write that
        // started it (CURRENT.tmp's rename comes ~100 ms after the reload began) would start a second
        // child beside the build (~200 ms of CPU taken from the swap); the build prepares the next one.
        // Nor when the version served was read from its serving-index.bin: the next one most likely
        // ships one too and needs no loader child, whose start (~200-300 ms of CPU) would only compete
        // with the requests served meanwhile and expire unused.
        const servedFromServingIndex = () => manager.current?.info().store.backend.loadedFrom === 'serving-index';
        watcher.on(WatchEvents.activity, ({ root }: { root: string }) => {
          if (root === config.vectorstoreDir && config.loaderStandbyMs > 0 && !manager.reloading && !servedFromServingIndex()) void prepareChromaStandby({ nice: LOADER_NICE, ttlMs: config.loaderStandbyMs });
        });
        watcher.on(WatchEvents.settled, ({ roots }: { roots: string[] }) => {
          // Never throws: failures are recorded by the manager and the old generation keeps serving.
          void manager.reload(`watch:${roots.map((r) => r.split('/').pop()).join(',')}`).catch((err: unknown) => logger.error({ err }, 'reload crashed'));
        });
        await watcher.start();
      }
      if (config.chromaUrl && config.storeName) {
        // Shared-Chroma mode: follow the pointer (and heartbeat what this replica serves).
        // The registry the source resolves with, opened on the first poll that reaches Chroma: a replica
        // started before its Chroma server (compose starts both at once) waits for it, serving 503.
        const chromaUrl = config.chromaUrl;
        pointerWatcher = new PointerWatcher({
          registry: () => sharedRegistryFor(chromaUrl),
          name: config.storeName,
          replica: config.replicaId ?? `${hostname()}:${process.pid}`,
          pollMs: config.pointerPollMs,
          logger,
          served: () => manager.current?.store.version ?? null,
        });
        pointerWatcher.on(PointerEvents.changed, (p: { version: string }) => {
          void manager.reload(`pointer:${p.version}`).catch((err: unknown) => logger.error({ err }, 'reload crashed'));
        });
        await pointerWatcher.start();
      }
      server = createHttpServer(app).listen(config.port, config.host);
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket));
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
      });
      server.keepAliveTimeout = 5_000;
      await once(server, 'listening');
      const addr = server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address;
      service.url = `http://${host}:${addr.port}`;
      lifecycle.ready = true;
      lifecycle.readyAt = performance.now();
      logger.info({ url: service.url, readyMs: Math.round(lifecycle.readyAt - lifecycle.startedAt) }, 'listening');
      return service.url;
    },
    stop() {
      stopPromise ??= (async () => {
        lifecycle.draining = true;
        logger.info('stopping: draining in-flight requests');
        if (server) {
          const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
          // Idle keep-alive sockets would hold close() open; busy ones finish their response first.
          server.closeIdleConnections();
          const timer = setTimeout(() => server!.closeAllConnections(), config.shutdownTimeoutMs);
          timer.unref();
          const idle = setInterval(() => server!.closeIdleConnections(), 100);
          await closed;
          clearInterval(idle);
          clearTimeout(timer);
        }
        await watcher?.close();
        await pointerWatcher?.close();
        await manager.close(config.shutdownTimeoutMs);
        for (const s of sockets) s.destroy();
        await audit?.close();
        logger.info('stopped');
        logger.flush?.();
      })();
      return stopPromise;
    },
  };
  return service;
}

/**
 * Requests Node's HTTP parser refuses before Express sees them (headers too large, malformed
 * request lines) get the same JSON error body as every other error, then the socket closes.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = tooLarge ? 431 : timeout ? 408 : 400;
  const body = JSON.stringify(
    tooLarge
      ? errorBody(431, 'RAG_HTTP_HEADERS_TOO_LARGE', 'the request headers are larger than the server accepts')
      : timeout
        ? errorBody(408, 'RAG_HTTP_BAD_REQUEST', 'the request was not received in time')
        : errorBody(400, 'RAG_HTTP_BAD_REQUEST', 'the request could not be parsed as HTTP'),
  );
  const reason = tooLarge ? 'Request Header Fields Too Large' : timeout ? 'Request Timeout' : 'Bad Request';
  // A HEAD request gets the head only (its client would read the body as a second response).
  const raw = (err as NodeJS.ErrnoException & { rawPacket?: Buffer }).rawPacket;
  const head = raw !== undefined && raw.subarray(0, 5).toString('latin1') === 'HEAD ';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`);
}
