/**
 * What a file is, from its first bytes. Only JPEG, PNG and WebP reach the decoder: other
 * formats are refused by their signature, so hostile SVG (scripts, XML entities), TIFF or
 * PDF bytes are never parsed at all.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

export type AcceptedFormat = 'jpeg' | 'png' | 'webp';

/** Bytes enough for every signature below. */
export const SNIFF_BYTES = 32;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The format of `head` (the first bytes of a file): an accepted one, another one by name, or 'unknown'. */
export function sniffFormat(head: Uint8Array): AcceptedFormat | string {
  const b = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, SNIFF_BYTES));
  const text = (from: number, to: number) => b.toString('latin1', from, to);
  if (b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png';
  if (text(0, 4) === 'RIFF' && text(8, 12) === 'WEBP') return 'webp';
  if (text(0, 4) === 'GIF8') return 'gif';
  if (text(0, 4) === 'II*\0' || text(0, 4) === 'MM\0*') return 'tiff';
  if (text(0, 2) === 'BM') return 'bmp';
  if (text(4, 8) === 'ftyp') return /avif|avis/.test(text(8, 12)) ? 'avif' : 'heif';
  if (text(0, 5) === '%PDF-') return 'pdf';
  if (text(0, 4) === 'PK\x03\x04') return 'zip';
  if (/^(\ufeff|\xef\xbb\xbf)?\s*</.test(text(0, SNIFF_BYTES))) return /<svg/i.test(text(0, SNIFF_BYTES)) ? 'svg' : 'xml or html';
  if (b.length === 0) return 'empty';
  return 'unknown';
}

export function isAccepted(format: string): format is AcceptedFormat {
  return format === 'jpeg' || format === 'png' || format === 'webp';
}

/** The first bytes of a file (fewer when it is shorter). */
export async function readHead(file: string): Promise<Buffer> {
  // Without blocking: a named pipe (or /proc/kmsg) given as a photo reads as nothing (or
  // fails) at once, and is refused before any decoder opens it and waits for ever.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(head, 0, SNIFF_BYTES, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
