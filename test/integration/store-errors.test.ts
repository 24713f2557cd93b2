import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { makeCatalog, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';
import { freshIndexName, PG_URL, sql } from '../helpers/pg.js';

// A bad --store gets one line that says what to do, exit code 1, and nothing written:
// no schema in the database, no folder on disk. The password user (lk_pw_test) and its
// pg_hba.conf line come from .ci/run.
const NAME = freshIndexName('bad');
const base = new URL(PG_URL);
const host = `${base.hostname}:${base.port || 5432}`;
let catalog: string;
let cwd: string;

beforeAll(async () => {
  catalog = await makeCatalog();
  cwd = tempDir('lookalike-badstore-');
  // A user that may log in but not create anything in the test database.
  await sql(PG_URL, `DO $$ BEGIN CREATE ROLE lk_noperm LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
}, 60_000);

afterAll(() => {
  rmSync(catalog, { recursive: true, force: true });
  rmSync(cwd, { recursive: true, force: true });
});

const cases: Array<{ what: string; url: string; code: string; says: RegExp }> = [
  { what: 'unreachable server', url: `postgres://postgres@127.0.0.1:1/test`, code: 'STORE_UNREACHABLE', says: /cannot reach the PostgreSQL server at 127\.0\.0\.1:1/ },
  { what: 'host typo', url: `postgres://postgres@no-such-host.invalid:5432/test`, code: 'STORE_UNREACHABLE', says: /unknown host/ },
  { what: 'wrong password', url: `postgres://lk_pw_test:wrong-password@${host}${base.pathname}`, code: 'STORE_AUTH_FAILED', says: /user "lk_pw_test".*Check the user and password/ },
  { what: 'missing database', url: `postgres://postgres@${host}/lk_no_such_database`, code: 'STORE_DATABASE_MISSING', says: /database "lk_no_such_database" does not exist.*createdb/ },
  { what: 'no permission', url: `postgres://lk_noperm@${host}${base.pathname}`, code: 'STORE_PERMISSION_DENIED', says: /user "lk_noperm" may not create tables.*GRANT CREATE/ },
  { what: 'scheme typo', url: `postgress://postgres@${host}/test`, code: 'STORE_URL_INVALID', says: /unknown scheme "postgress"/ },
  { what: 'no database in the URL', url: `postgres://postgres@${host}`, code: 'STORE_URL_INVALID', says: /no database name/ },
  { what: 'bad port', url: `postgres://postgres@${host.split(':')[0]}:99999/test`, code: 'STORE_URL_INVALID', says: /./ },
];

describe('a bad --store', () => {
  for (const c of cases) {
    it(`${c.what}: one line, ${c.code}, exit 1, nothing written`, async () => {
      const r = runCli(['index', catalog, '--store', c.url, '--index', NAME], { cwd });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^lookalike: .*\\[${c.code}\\]$`));
      expect(lines[0]).toMatch(c.says);
      expect(lines[0]).not.toContain('wrong-password');
      expect(readdirSync(cwd)).toEqual([]);
      const schema = await sql(PG_URL, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [NAME]);
      expect(schema.rowCount).toBe(0);
    });
  }

  it('a read command on an index that is not there: INDEX_NOT_FOUND, and still nothing written', async () => {
    const r = runCli(['info', '--store', PG_URL, '--index', NAME], { cwd });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/\[INDEX_NOT_FOUND\]$/);
    expect((await sql(PG_URL, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [NAME])).rowCount).toBe(0);
    expect(existsSync(`${cwd}/.lookalike`)).toBe(false);
  });

  it('LOOKALIKE_STORE stands for --store; an index name that is a path is refused', () => {
    const r = runCli(['info', '--index', '../elsewhere'], { cwd, env: { LOOKALIKE_STORE: `postgress://x@y/z` } });
    expect(r.stderr.trim()).toMatch(/\[STORE_URL_INVALID\]$/);
    const named = runCli(['info', '--store', PG_URL, '--index', '../elsewhere'], { cwd });
    expect(named.stderr.trim()).toMatch(/\[STORE_BAD_INDEX_NAME\]$/);
    expect(readdirSync(cwd)).toEqual([]);
  });
});
