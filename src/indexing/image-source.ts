/**
 * The identity of a catalog image on disk: its bytes' sha256 (what decides whether an image
 * changed) and a stamp from `stat` (size and modification time: what a rerun can check for
 * every file without reading it). Indexing (embed-batch.ts) records both with the vectors;
 * reruns (changes.ts) compare them with the catalog.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

/** Larger files are hashed as a stream and decoded from their path instead of held in memory. */
const IN_MEMORY_BYTES = 64 * 1024 * 1024;

export interface ImageFile {
  /** The bytes, unless the file is too large to hold (then decode from the path). */
  bytes?: Buffer;
  hash: string;
  stamp: string;
}

export function fileStamp(s: { size: number; mtimeMs: number }): string {
  return `file:${s.size}:${Math.round(s.mtimeMs)}`;
}

/** Reads an image file once; undefined when it cannot be read (the decoder then says why, in its words). */
export async function readImageFile(file: string): Promise<ImageFile | undefined> {
  try {
    // Without blocking: a named pipe in a catalog would wait for a writer for ever.
    const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const info = await handle.stat();
      // Not a regular file, or one that claims to be empty (files under /proc do, and some,
      // like kmsg, never end): no bytes, never read (decoding from the path would block on
      // it too), so the decoder reports an empty photo.
      if (!info.isFile() || info.size === 0) return { bytes: Buffer.alloc(0), hash: sha256(Buffer.alloc(0)), stamp: fileStamp(info) };
      if (info.size > IN_MEMORY_BYTES) return { hash: await hashFile(file), stamp: fileStamp(info) };
      const bytes = await handle.readFile();
      return { bytes, hash: sha256(bytes), stamp: fileStamp(info) };
    } finally {
      await handle.close();
    }
  } catch {
    return undefined;
  }
}

/** The hash every image source carries (files here, fetched URLs in embed-batch.ts). */
export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
