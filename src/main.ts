#!/usr/bin/env node
import { loadConfig } from './config.js';
import { isRagError } from './errors.js';
import { createLogger } from './observability/logger.js';
import { createService } from './service.js';

/** Composition root: the only place with process signals. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(isRagError(err) ? `[${err.code}] ${err.message}` : err);
    process.exit(78);
  }
  const logger = createLogger({ level: config.logLevel });
  const service = createService(config, { logger });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    logger.info({ signal }, 'signal received: graceful shutdown');
    service.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await service.start();
  } catch (err) {
    logger.fatal({ code: isRagError(err) ? err.code : undefined, err: err instanceof Error ? err.message : String(err) }, 'start-up failed');
    await service.stop().catch(() => undefined);
    process.exit(1);
  }
}

void main();
