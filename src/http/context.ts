import type { Request, Response } from 'express';
import type { Config } from '../config.js';
import type { AuditLog } from '../observability/audit-log.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { RagService } from '../rag/rag-service.js';
import type { Generation, Lease } from '../reload/generation.js';
import type { ReloadManager } from '../reload/reload-manager.js';

/** Service state the HTTP layer reads (readiness, draining). */
export interface Lifecycle {
  ready: boolean;
  draining: boolean;
  startedAt: number;
  readyAt: number | null;
}

export interface AppDeps {
  config: Config;
  manager: ReloadManager;
  rag: RagService;
  metrics: Metrics;
  logger: Logger;
  lifecycle: Lifecycle;
  audit?: AuditLog | null;
}

/**
 * Acquire the active generation for the whole life of this response (streams included):
 * released once when the response finishes or the client goes away.
 */
export function leaseFor(deps: AppDeps, req: Request, res: Response): Generation {
  const lease: Lease = deps.manager.acquire();
  const release = () => lease.release();
  res.once('finish', release);
  res.once('close', release);
  (req as Request & { generation?: string }).generation = lease.generation.id;
  return lease.generation;
}
