/**
 * The log of the long-running commands (`serve`, `worker`): pino, Fastify's own logger, so
 * request lines and event lines (store follow, reconnects, batches) share one format with a
 * timestamp on every line. JSON lines by default, for log collectors; on a terminal, the
 * same records made readable by pino-pretty. Written synchronously, so the last lines
 * before an exit are never lost.
 */
import { Option } from 'commander';
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log lines as json (one object per line, with "time") or pretty (readable); auto: pretty on a terminal, else json')
    .choices([...LOG_FORMATS]).default('auto').env('LOOKALIKE_LOG_FORMAT');
}

export function logLevelOption(): Option {
  return new Option('--log-level <level>', 'least important lines logged').choices([...LOG_LEVELS]).default('info').env('LOOKALIKE_LOG_LEVEL');
}

/** A logger on stdout; `service` is on every JSON line (serve, worker). */
export function createLogger(service: string, format: LogFormat = 'auto', level: LogLevel = 'info'): Logger {
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  const options = { level, base: { service, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (!readable) return pino(options, pino.destination({ dest: 1, sync: true }));
  return pino(options, pretty({ destination: 1, sync: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,service' }));
}
