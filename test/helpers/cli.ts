import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** tsx's loader by its path, so that a run in another working directory still finds it. */
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

/** Runs the CLI from source (tsx), as a user would run `lookalike ...`. */
export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', TSX, path.join(ROOT, 'src/cli/main.ts'), ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The same program run in this process, as `lookalike ...` (a process start costs seconds on
 * a loaded machine): exit code, stdout and stderr, with `env` set for the run only.
 */
export async function runCliInProcess(args: string[], env: Record<string, string | undefined> = {}): Promise<{ exit: number; stdout: string; stderr: string }> {
  const { createProgram } = await import('../../src/cli/program.js');
  const out: string[] = [], err: string[] = [];
  const { write: writeOut } = process.stdout, { write: writeErr } = process.stderr;
  const previousExitCode = process.exitCode;
  const previousEnv = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const setEnv = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  };
  setEnv(env);
  process.exitCode = undefined;
  process.stdout.write = ((chunk: string | Uint8Array) => { out.push(String(chunk)); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => { err.push(String(chunk)); return true; }) as typeof process.stderr.write;
  let exit: number;
  try {
    const program = createProgram();
    // Usage errors throw instead of exiting this process (subcommands need it set too).
    for (const command of [program, ...program.commands]) command.exitOverride();
    await program.parseAsync(args, { from: 'user' });
    exit = Number(process.exitCode ?? 0);
  } catch (e) {
    exit = (e as { exitCode?: number }).exitCode ?? -1;
    // Commander has already printed its usage errors; anything else escaped the CLI's handling.
    if (!String((e as { code?: string }).code).startsWith('commander.')) err.push(String(e));
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
    process.exitCode = previousExitCode;
    setEnv(previousEnv);
  }
  return { exit, stdout: out.join(''), stderr: err.join('') };
}
