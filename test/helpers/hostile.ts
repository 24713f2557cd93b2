/**
 * Hostile inputs, drawn or hand-assembled here so the tests need no dataset: damaged
 * and tricky images, malformed HTTP requests sent byte for byte, and an index signature
 * that proves a refused request changed nothing.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { deflateSync, crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { isLookalikeError } from '../../src/errors.js';

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A valid PNG header claiming width x height; `rows` decides whether the pixel data is real. */
export function pngClaiming(width: number, height: number, options: { bitDepth?: number; colourType?: number; fullData?: boolean } = {}): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = options.bitDepth ?? 8;
  ihdr[9] = options.colourType ?? 2;
  // A decompression bomb: every row present, all zeros, so a few kB inflate to many MB.
  const rowBytes = Math.ceil((width * (options.bitDepth ?? 8) * ((options.colourType ?? 2) === 2 ? 3 : 1)) / 8) + 1;
  const data = options.fullData ? deflateSync(Buffer.alloc(rowBytes * height), { level: 9 }) : deflateSync(Buffer.alloc(1));
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', data), pngChunk('IEND', Buffer.alloc(0))]);
}

/** The same PNG with one byte of the IDAT checksum flipped. */
export function withBadPngChecksum(png: Buffer): Buffer {
  const at = png.indexOf('IDAT');
  const length = png.readUInt32BE(at - 4);
  const out = Buffer.from(png);
  out[at + 4 + length] ^= 0xff;
  return out;
}

/** The same JPEG with its entropy-coded scan overwritten by pseudo-random bytes (no 0xFF, so no stray markers). */
export function withRandomScan(jpeg: Buffer): Buffer {
  const sos = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  const start = sos + 2 + jpeg.readUInt16BE(sos + 2);
  const out = Buffer.from(jpeg);
  let x = 12345;
  for (let i = start; i < out.length - 2; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out[i] = (x >>> 16) % 0xff;
  }
  return out;
}

/** A two-frame animated GIF, 1x1 (GIF is not an accepted format, animated or not). */
export function animatedGif(): Buffer {
  const frame = Buffer.from([
    0x21, 0xf9, 0x04, 0x00, 0x0a, 0x00, 0x00, 0x00, // graphic control: 100 ms
    0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, // image descriptor 1x1
    0x02, 0x02, 0x44, 0x01, 0x00, // LZW data
  ]);
  return Buffer.concat([
    Buffer.from('GIF89a', 'ascii'),
    Buffer.from([0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00]), // 1x1, global colour table of 2
    Buffer.from([0xff, 0x00, 0x00, 0x00, 0x00, 0xff]),
    Buffer.from([0x21, 0xff, 0x0b]), Buffer.from('NETSCAPE2.0', 'ascii'), Buffer.from([0x03, 0x01, 0x00, 0x00, 0x00]),
    frame, frame,
    Buffer.from([0x3b]),
  ]);
}

/** A GIF header claiming 65535 x 65535 pixels in 30 bytes. */
export function hugeGif(): Buffer {
  return Buffer.concat([Buffer.from('GIF89a', 'ascii'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00]), Buffer.from([0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b])]);
}

/** A 2x2 24-bit BMP. */
export function bmp(): Buffer {
  const pixels = Buffer.alloc(16, 0x80);
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'ascii');
  header.writeUInt32LE(54 + pixels.length, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(2, 18);
  header.writeInt32LE(2, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  header.writeUInt32LE(pixels.length, 34);
  return Buffer.concat([header, pixels]);
}

export const drawn = {
  cmykJpeg: () => sharp({ create: { width: 60, height: 80, channels: 3, background: '#d22' } }).toColourspace('cmyk').jpeg().toBuffer(),
  png16: () => sharp({ create: { width: 60, height: 80, channels: 3, background: '#23c' } }).toColourspace('rgb16').png().toBuffer(),
  tiff: () => sharp({ create: { width: 60, height: 80, channels: 3, background: '#2a3' } }).tiff().toBuffer(),
  greyAlphaPng: () => sharp({ create: { width: 60, height: 80, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer(),
};

export const SVG_WITH_SCRIPT = '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="80"><script>alert(document.cookie)</script><rect width="60" height="80" fill="#d22"/></svg>';
export const SVG_WITH_ENTITY = '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg" width="60" height="80"><text y="20">&xxe;</text></svg>';

/** One HTTP exchange written byte for byte: no client-side checks, no normalisation. */
export function rawHttp(base: string, head: string, body: Buffer | Buffer[] = [], options: { chunked?: boolean } = {}): Promise<{ status: number; headers: string; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.setTimeout(20_000, () => socket.destroy(new Error('no answer within 20 s')));
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const headers = split >= 0 ? text.slice(0, split) : text;
      let payload = split >= 0 ? text.slice(split + 4) : '';
      if (/transfer-encoding: chunked/i.test(headers)) payload = dechunk(payload);
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(headers)?.[1] ?? 0), headers, body: Buffer.from(payload, 'latin1').toString('utf8') });
    });
    socket.on('connect', async () => {
      socket.write(head.replace(/\n/g, '\r\n') + '\r\n');
      for (const part of [body].flat()) {
        if (options.chunked) socket.write(`${part.length.toString(16)}\r\n`);
        socket.write(part);
        if (options.chunked) socket.write('\r\n');
        await new Promise((r) => setTimeout(r, 5));
      }
      if (options.chunked) socket.write('0\r\n\r\n');
    });
  });
}

function dechunk(text: string): string {
  let out = '';
  for (let at = 0; at < text.length;) {
    const eol = text.indexOf('\r\n', at);
    const size = parseInt(text.slice(at, eol), 16);
    if (!size) break;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
  return out;
}

/** A multipart/form-data body with one file field. */
export function multipartBody(boundary: string, file: Buffer, options: { field?: string; filename?: string; close?: boolean } = {}): Buffer {
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${options.field ?? 'image'}"; filename="${options.filename ?? 'photo.jpg'}"\r\nContent-Type: image/jpeg\r\n\r\n`),
    file,
    Buffer.from(options.close === false ? '' : `\r\n--${boundary}--\r\n`),
  ]);
}

/** Items, vectors and failures of an index as one hash: equal before and after means untouched. */
export function indexSignature(indexDir: string): string {
  const db = new Database(path.join(indexDir, 'index.sqlite'), { readonly: true });
  try {
    const hash = createHash('sha256');
    for (const r of db.prepare('SELECT id, image, metadata FROM items ORDER BY seq').raw().iterate()) hash.update(JSON.stringify(r));
    for (const r of db.prepare('SELECT id, vmax, vavg, colour FROM vectors ORDER BY id').raw().iterate() as IterableIterator<[string, Buffer, Buffer, Buffer]>) {
      hash.update(r[0]).update(r[1]).update(r[2]).update(r[3]);
    }
    for (const r of db.prepare('SELECT id, reason FROM failures ORDER BY id').raw().iterate()) hash.update(JSON.stringify(r));
    return hash.digest('hex');
  } finally {
    db.close();
  }
}

/** The error code a call fails with (null when it succeeds); anything but a LookalikeError is rethrown. */
export async function codeOf(body: () => unknown): Promise<string | null> {
  try {
    await body();
    return null;
  } catch (err) {
    if (!isLookalikeError(err)) throw err;
    return err.code;
  }
}
