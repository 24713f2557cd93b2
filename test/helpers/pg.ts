/**
 * Real PostgreSQL servers for the store tests: Debian's server (`.ci/run` installs and
 * starts it; LOOKALIKE_TEST_PG overrides the URL), and PGlite served over the wire protocol
 * by pglite-socket, reached with the same `pg` client code the product uses. Every test
 * run names its indexes afresh and drops them after, so runs never collide.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG_URL = process.env.LOOKALIKE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

/** An index name no other run uses (a schema in the test database). */
export function freshIndexName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

export async function dropIndex(url: string, name: string): Promise<void> {
  await sql(url, `DROP SCHEMA IF EXISTS "${name}" CASCADE`);
}

export interface PgliteServer { url: string; stop(): Promise<void> }

/** PGlite (in memory, with pgvector) on a free local port. */
export async function startPglite(): Promise<PgliteServer> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { vector } = await import('@electric-sql/pglite-pgvector');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const db = await PGlite.create({ extensions: { vector } });
  const server = new PGLiteSocketServer({ db, port: 0, host: '127.0.0.1', maxConnections: 16 });
  await server.start();
  const conn = server.getServerConn();
  return {
    url: `postgres://postgres@${conn}/postgres`,
    stop: async () => {
      await server.stop();
      await db.close();
    },
  };
}
