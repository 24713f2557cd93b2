/**
 * One writer per index: `lookalike index` (and anything else that rewrites an index)
 * holds `index.lock` in the index folder while it runs. The file is created exclusively
 * (O_EXCL), so of two runs started together exactly one wins; it names its holder (pid,
 * host, what it does, since when) so the other can say who. A lock whose process is gone
 * (killed, crashed) is stale and taken over, so a kill -9 never leaves an index stuck.
 * Readers (query, serve) take no lock: SQLite's WAL lets them read while a writer writes.
 *
 * Other stores mirror `acquireIndexLock` with their own primitive (PostgreSQL: an advisory
 * lock keyed by the index); callers only see acquire / release and INDEX_LOCKED.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LookalikeError } from '../errors.js';

export const LOCK_FILE = 'index.lock';

export interface IndexLock {
  release(): void;
}

interface LockHolder { pid: number; host: string; purpose: string; since: string }

/** Takes the index's write lock (making the folder when missing) or throws INDEX_LOCKED. */
export function acquireIndexLock(dir: string, purpose: string): IndexLock {
  const file = path.join(dir, LOCK_FILE);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw folderError(err, dir);
  }
  const me: LockHolder = { pid: process.pid, host: os.hostname(), purpose, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        const holder = readHolder(file);
        if (holder ? isAlive(holder) : justCreated(file)) {
          throw new LookalikeError('INDEX_LOCKED', { path: dir, holder: !holder ? 'starting' : `${holder.purpose}, pid ${holder.pid} on ${holder.host}, since ${holder.since}` });
        }
        // Stale: its process is gone, or it was left empty by one that died at once.
        rmSync(file, { force: true });
        continue;
      }
      throw folderError(err, dir);
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      process.off('exit', release);
      // Only our own lock: a run that lost it to a stale-lock takeover must not drop the new holder's.
      if (readHolder(file)?.pid === me.pid) rmSync(file, { force: true });
    };
    process.on('exit', release);
    return { release };
  }
  throw new LookalikeError('INDEX_LOCKED', { path: dir, holder: 'another process that keeps taking it' });
}

function folderError(err: unknown, dir: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ENOTDIR') return new LookalikeError('INDEX_NOT_A_FOLDER', { path: dir }, { cause: err });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new LookalikeError('INDEX_NOT_WRITABLE', { path: dir, reason: code === 'EROFS' ? 'read-only file system' : 'permission denied' }, { cause: err });
  }
  return err;
}

/** An unreadable lock younger than a few seconds is being written right now. */
function justCreated(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < 5000;
  } catch {
    return false;
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return Number.isInteger(holder.pid) ? holder : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the lock's process still runs; one on another host cannot be checked, so it counts as alive. */
function isAlive(holder: LockHolder): boolean {
  if (holder.host !== os.hostname()) return true;
  if (holder.pid === process.pid) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
