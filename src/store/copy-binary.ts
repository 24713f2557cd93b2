/**
 * Reads `COPY (SELECT id, vec, ...) TO STDOUT (FORMAT binary)` straight into contiguous
 * float32 matrices: the bytes of each vector arrive as they are stored, without the hex
 * text a plain SELECT of bytea returns (twice the size, then decoded), and without a row
 * object per item. Format: PostgreSQL docs, "COPY", "Binary Format".
 */
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

export interface CopiedVectors { ids: string[]; matrices: Float32Array[]; dims: number[] }

/**
 * `sql` selects (id text, then `columns` bytea columns of float32 vectors). `expected` rows
 * size the buffers up front (they grow when more come).
 */
export async function copyVectors(client: pg.PoolClient, sql: string, columns: number, expected: number): Promise<CopiedVectors> {
  const stream = client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`));
  const ids: string[] = [];
  const dims: number[] = new Array<number>(columns).fill(0);
  let bytes: Uint8Array[] = new Array<Uint8Array>(columns).fill(new Uint8Array(0));
  let pending: Buffer = Buffer.alloc(0);
  let headerDone = false;
  let ended = false;

  const take = (): boolean => {
    let at = 0;
    if (!headerDone) {
      if (pending.length < 19) return false;
      if (!pending.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY BINARY: bad signature');
      at = 19 + pending.readInt32BE(15);
      headerDone = true;
    }
    for (;;) {
      if (pending.length - at < 2) break;
      const fields = pending.readInt16BE(at);
      if (fields === -1) { ended = true; at += 2; break; }
      // Is the whole tuple here? Walk its field lengths first.
      let p = at + 2;
      let whole = true;
      for (let f = 0; f < fields; f++) {
        if (pending.length - p < 4) { whole = false; break; }
        const len = pending.readInt32BE(p);
        p += 4 + Math.max(0, len);
        if (p > pending.length) { whole = false; break; }
      }
      if (!whole) break;
      p = at + 2;
      const row = ids.length;
      for (let f = 0; f < fields; f++) {
        const len = pending.readInt32BE(p);
        p += 4;
        if (f === 0) ids.push(pending.toString('utf8', p, p + len));
        else {
          const c = f - 1;
          if (!dims[c]) {
            dims[c] = len / 4;
            bytes[c] = new Uint8Array(Math.max(1, expected) * len);
          }
          if ((row + 1) * len > bytes[c].length) {
            const grown = new Uint8Array(bytes[c].length * 2);
            grown.set(bytes[c]);
            bytes[c] = grown;
          }
          bytes[c].set(pending.subarray(p, p + len), row * len);
        }
        p += Math.max(0, len);
      }
      at = p;
    }
    pending = pending.subarray(at);
    return ended;
  };

  for await (const chunk of stream as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    take();
  }
  if (!ended) take();
  bytes = bytes.map((b, c) => b.subarray(0, ids.length * dims[c] * 4));
  // Copied once more only when the buffer is not 4-byte aligned (it always is: fresh allocations).
  const matrices = bytes.map((b) => new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  return { ids, matrices, dims };
}
