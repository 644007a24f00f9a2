import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export interface LoggerConfig {
  level: string;
  /** Extra destination (tests); defaults to stdout. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(config: LoggerConfig): Logger {
  const options: LoggerOptions = {
    level: config.level,
    base: { service: 'rag' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey', '*.api_key'], censor: '[redacted]' },
  };
  return config.destination ? pino(options, config.destination) : pino(options);
}

/** A logger that drops everything (CLI tools that print their own progress). */
export function createSilentLogger(): Logger {
  return pino({ level: 'silent' });
}
