/**
 * What every CLI command shares: number parsing, progress bars, output, and turning
 * errors into one line on stderr with a non-zero exit code. The options themselves are
 * declared in options.ts.
 */
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { asLookalikeError, LookalikeError } from '../errors.js';
import { DEFAULT_STORE_INDEX, ENV } from '../defaults.js';
import { storeLocation } from '../store/location.js';
import { parseAllowHosts } from '../image/url-policy.js';
import { Lookalike } from '../lookalike.js';

const TRUE = /^(1|true|yes|on)$/i;
const FALSE = /^(0|false|no|off|)$/i;

/**
 * Commander turns an on/off flag on whenever its variable is set, even to "false": here
 * 1/true/yes/on mean on, 0/false/no/off/empty mean off, anything else is refused.
 */
function readSwitchesFromEnv(command: Command, flags: Record<string, unknown>): void {
  for (const option of command.options) {
    const key = option.attributeName();
    if (!option.envVar || !option.isBoolean() || command.getOptionValueSource(key) !== 'env') continue;
    const value = process.env[option.envVar] ?? '';
    if (TRUE.test(value)) flags[key] = true;
    else if (FALSE.test(value)) flags[key] = undefined;
    else throw new LookalikeError('BAD_OPTION', { message: `${option.envVar}=${JSON.stringify(value)} is not on or off: set it to 1 or 0 (true/false, yes/no), or unset it.` });
  }
}

/**
 * With a store, `--index` names the index in it: the flags' `index` becomes the location
 * `postgres://…#NAME` (store/location.ts), which the library opens as PostgreSQL. Without
 * one, nothing changes: a folder.
 */
function resolveStore(args: unknown[]): void {
  const command = args.find((a): a is Command => a instanceof Command);
  const flags = args.find((a): a is { index?: string; store?: string } => typeof a === 'object' && a !== null && !(a instanceof Command) && 'index' in a);
  if (!flags || !command) return;
  const source = command.getOptionValueSource('index');
  if (!flags.store) {
    // LOOKALIKE_INDEX names a folder: relative to the current directory, as the default is.
    if (source === 'env' && flags.index) flags.index = path.resolve(flags.index);
    return;
  }
  const fromEnv = process.env[ENV.index];
  const name = source === 'default' || source === 'env' ? (fromEnv && !fromEnv.includes('/') ? fromEnv : DEFAULT_STORE_INDEX) : String(flags.index);
  flags.index = storeLocation(flags.store, name);
}

/** The image fetching options of `--allow-host` (or its environment variable). */
export function fetchOptionsOf(flags: { allowHost?: string[] }): { allowHosts: string[] } {
  return { allowHosts: parseAllowHosts(flags.allowHost ?? process.env[ENV.allowHosts]) };
}

export function intArg(name: string, min = 1, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}.`);
    return n;
  };
}

export function floatArg(name: string, min = -Infinity, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number from ${min} to ${max}.`);
    return n;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Runs a command body. Every failure ends the same way: one line on stderr,
 * `lookalike: <what to do> [CODE]`, or with --json `{"error": {"code", "message"}}` on
 * stdout, and exit code 1. Failures that are not Lookalike's own are bugs (INTERNAL);
 * LOOKALIKE_DEBUG=1 adds their stack trace.
 */
export function action<A extends unknown[]>(body: (...args: A) => Promise<void> | void) {
  return async (...args: A): Promise<void> => {
    try {
      const command = args.find((a): a is Command => a instanceof Command);
      const flags = args.find((a): a is Record<string, unknown> => typeof a === 'object' && a !== null && !(a instanceof Command));
      if (command && flags) readSwitchesFromEnv(command, flags);
      resolveStore(args);
      await body(...args);
    } catch (err) {
      const json = args.some((a) => typeof a === 'object' && a !== null && (a as { json?: unknown }).json === true);
      printError(asLookalikeError(err), json);
      if (process.env.LOOKALIKE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      process.exitCode = 1;
    }
  };
}

export function printError(err: LookalikeError, json = false): void {
  if (json) process.stdout.write(`${JSON.stringify({ error: { code: err.code, message: err.message } })}\n`);
  else process.stderr.write(`lookalike: ${err.message} [${err.code}]\n`);
}

export async function withIndex<T>(dir: string, body: (lookalike: Lookalike) => Promise<T>): Promise<T> {
  const lookalike = await Lookalike.open(dir);
  try {
    return await body(lookalike);
  } finally {
    await lookalike.close();
  }
}

/**
 * A progress bar on stderr. `show`: true draws the bar, false shows nothing, and by default
 * the bar is drawn on a terminal while other stderr (CI logs, pipes) gets a plain line
 * every 15 s, so long runs still show they are alive.
 */
export function progressBar(label: string, unit: string, show?: boolean) {
  if (show === false) return { start: (_t: number) => {}, update: (_v: number, _r?: number) => {}, stop: () => {} };
  if (show === undefined && process.stderr.isTTY !== true) {
    let total = 0, last = 0, started = 0;
    return {
      start: (t: number) => { total = t; started = last = Date.now(); },
      update: (value: number, rate?: number) => {
        const now = Date.now();
        if (now - last < 15_000 && value < total) return;
        last = now;
        const r = rate ?? value / Math.max(1e-3, (now - started) / 1000);
        const eta = r > 0 ? Math.round((total - value) / r) : 0;
        process.stderr.write(`${label}: ${value}/${total} ${unit} (${Math.floor((100 * value) / Math.max(1, total))}%), ${r.toFixed(1)} ${unit}/s, ETA ${Math.floor(eta / 60)}m${String(eta % 60).padStart(2, '0')}s\n`);
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} ${unit}/s | ETA {eta_formatted}`,
    stream: process.stderr,
    etaBuffer: 200,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  return {
    start: (total: number) => bar.start(total, 0, { rate: '-' }),
    update: (value: number, rate?: number) => bar.update(value, { rate: rate === undefined ? '-' : rate.toFixed(1) }),
    stop: () => bar.stop(),
  };
}

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Pads columns of a small table for the terminal. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}

export function badOption(message: string): never {
  throw new LookalikeError('BAD_OPTION', { message });
}

export type { Command };
