import { pino, type Logger } from 'pino';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
];

/** Level from `KATA_TS_LOG` (default `warn`, so stderr stays quiet for scripts). */
export function levelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const value = env['KATA_TS_LOG'];
  return value && (LOG_LEVELS as readonly string[]).includes(value) ? (value as LogLevel) : 'warn';
}

/** Structured JSON logs on stderr (fd 2), synchronous so nothing is lost on exit. */
export function createLogger(level: LogLevel = levelFromEnv()): Logger {
  return pino(
    { name: 'kata-ts', level, base: { pid: process.pid } },
    pino.destination({ dest: 2, sync: true }),
  );
}
