import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS, LookalikeError } from '../../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [readFileSync(p, 'utf8')] : [];
  });
}

describe('the error catalogue', () => {
  const codes = Object.keys(ERRORS);
  const src = sources(path.join(ROOT, 'src')).join('\n');
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');

  it('has every code raised somewhere in src (a declared code nobody raises is a promise not kept)', () => {
    // Declarations are `CODE: {`; every quoted 'CODE' is a use (raised, or mapped to).
    expect(codes.filter((code) => !src.includes(`'${code}'`))).toEqual([]);
  });

  it('lists every code in the README', () => {
    expect(codes.filter((code) => !readme.includes(`\`${code}\``))).toEqual([]);
  });

  it('keeps server paths out of API messages, and 100 kB parameters out of every message', () => {
    const e = new LookalikeError('MAP_UNREADABLE', { path: '/srv/index/map.json', index: '/srv/index', reason: 'x' });
    expect(e.message).toContain('/srv/index');
    expect(e.publicMessage).not.toContain('/srv');
    const long = new LookalikeError('ITEM_NOT_FOUND', { id: 'x'.repeat(100_000) });
    expect(long.message.length).toBeLessThan(400);
    expect(long.message).toContain('(100000 characters)');
    const sentence = 'the multipart form could not be read. '.repeat(5);
    expect(new LookalikeError('INVALID_REQUEST', { message: sentence }).message).toBe(sentence);
  });
});
