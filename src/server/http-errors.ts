/**
 * One place turns every failure into `{ error: { code, message } }` with the right status:
 * Lookalike's own errors, request validation, multipart limits, body parsing and bugs.
 * Messages say what to change, in plain words; internals (stack traces, paths) stay in
 * the server log.
 */
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { asLookalikeError, isLookalikeError, LookalikeError } from '../errors.js';
import type { ServerContext } from './context.js';
import { JSON_BODY_LIMIT, MAX_ID_CHARS, UPLOAD_KEYWORD } from './schemas.js';

interface AjvError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

const WHERE: Record<string, string> = { querystring: 'query parameter', body: 'field', params: 'path parameter', headers: 'header' };

/** An Ajv error as one sentence a person can act on. */
export function describeValidation(errors: AjvError[], context: string | undefined): string {
  const e = errors[0];
  if (!e) return 'the request is not valid. See /api/openapi.json for what this route takes.';
  const where = WHERE[context ?? ''] ?? 'value';
  // "/filter/0" -> "filter"; the index adds nothing a person needs.
  const field = e.instancePath.split('/').filter((p) => p && !/^\d+$/.test(p)).join('.') || where;
  const p = e.params;
  switch (e.keyword) {
    case 'required':
      if (p.missingProperty === 'image') return 'no photo in the request: attach it as the multipart form field "image" (JPEG, PNG or WebP), or send JSON {"id": "<catalog id>"} to search by item.';
      return `the ${where} "${p.missingProperty}" is missing.`;
    case 'additionalProperties':
      return `unknown ${where} "${p.additionalProperty}". The parameters this route takes are listed at /api/openapi.json.`;
    case 'type':
      if (p.type === 'object' && !e.instancePath) return `the ${context === 'body' ? 'JSON body' : where} must be an object, e.g. {"id": "15970", "k": 10}.`;
      return `${field} must be ${p.type === 'integer' ? 'a whole number' : p.type === 'number' ? 'a number' : p.type === 'array' ? 'a list' : p.type === 'object' ? 'an object' : `a ${p.type}`}.`;
    case 'minimum':
    case 'exclusiveMinimum':
      return `${field} must be at least ${p.limit}.`;
    case 'maximum':
    case 'exclusiveMaximum':
      return `${field} must be at most ${p.limit}.`;
    case 'enum':
      return `${field} must be one of: ${(p.allowedValues as unknown[]).join(', ')}.`;
    case 'minLength':
      return `${field} must not be empty.`;
    case 'maxLength':
      return `${field} is too long (at most ${p.limit} characters).`;
    case 'maxItems':
      return `too many values for ${field} (at most ${p.limit}).`;
    case UPLOAD_KEYWORD:
      return `"${field}" must be a file upload (the photo), not a text field.`;
    default:
      return `${field} ${e.message ?? 'is not valid'}.`;
  }
}

/** Any error as a LookalikeError: known ones keep their code, the rest map by Fastify code. */
export function toLookalikeError(err: FastifyError | Error, ctx: ServerContext, contentType?: string): LookalikeError {
  if (isLookalikeError(err)) return err;
  const fe = err as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) return new LookalikeError('INVALID_REQUEST', { message: describeValidation(fe.validation, fe.validationContext) });
  switch (fe.code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new LookalikeError('UPLOAD_TOO_LARGE', { limit: ctx.limits.maxUploadBytes.toLocaleString('en-US') });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new LookalikeError('BODY_TOO_LARGE', { limit: JSON_BODY_LIMIT.toLocaleString('en-US') });
    case 'FST_ERR_BAD_URL':
      return new LookalikeError('INVALID_REQUEST', { message: 'the URL is not valid: a %-escape in the path is malformed. Encode item ids with encodeURIComponent.' });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new LookalikeError('URI_TOO_LONG', { limit: MAX_ID_CHARS });
    case 'FST_FILES_LIMIT':
      return new LookalikeError('INVALID_REQUEST', { message: 'send one photo per search (in the field "image").' });
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new LookalikeError('INVALID_REQUEST', { message: 'the form has too many fields. Send the photo in "image" plus k, threshold, filter, mode or pooling.' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new LookalikeError('UNSUPPORTED_MEDIA_TYPE', { type: (contentType ?? '').split(';')[0].trim().slice(0, 100) || 'untyped' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new LookalikeError('INVALID_REQUEST', { message: 'the JSON body is empty. Send e.g. {"id": "15970", "k": 10}.' });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new LookalikeError('INVALID_REQUEST', { message: 'the body is not valid JSON. Send e.g. {"id": "15970", "k": 10}.' });
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_PROTO_VIOLATION':
    case 'FST_MP_PREMATURE_CLOSE':
      return MULTIPART_UNREADABLE();
  }
  // busboy's own errors carry no code or status: a malformed form is the client's, not a bug.
  if (BUSBOY_ERRORS.test(fe.message ?? '')) return MULTIPART_UNREADABLE();
  if (fe instanceof SyntaxError && fe.statusCode === 400) {
    return new LookalikeError('INVALID_REQUEST', { message: 'the body is not valid JSON. Send e.g. {"id": "15970", "k": 10}.' });
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify/busboy client errors not listed above (rare): their text is about the request.
    return new LookalikeError('INVALID_REQUEST', { message: `the request could not be read: ${fe.message}.` });
  }
  return asLookalikeError(err);
}

const BUSBOY_ERRORS = /^(Multipart: Boundary not found|Unexpected end of (form|multipart data)|Malformed part header|Part terminated early)/;
const MULTIPART_UNREADABLE = () => new LookalikeError('INVALID_REQUEST', {
  message: 'the multipart form could not be read (no boundary, a malformed part, or cut off). Send the photo as multipart/form-data with the field "image", as a browser form or `curl -F image=@photo.jpg` does.',
});

/**
 * The JSON body parser: Fastify's refuses "__proto__" keys too, but calls them "not valid
 * JSON", which sends a client looking for a syntax error that is not there.
 */
export function parseJsonBody(_request: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void): void {
  if (body.length === 0) {
    done(new LookalikeError('INVALID_REQUEST', { message: 'the JSON body is empty. Send e.g. {"id": "15970", "k": 10}.' }));
    return;
  }
  let poisoned = false;
  let value: unknown;
  try {
    value = JSON.parse(body, (key, v: unknown) => {
      if (key === '__proto__' || (key === 'constructor' && typeof v === 'object' && v !== null && 'prototype' in v)) poisoned = true;
      return v;
    });
  } catch {
    done(new LookalikeError('INVALID_REQUEST', { message: 'the body is not valid JSON. Send e.g. {"id": "15970", "k": 10}.' }));
    return;
  }
  if (poisoned) {
    done(new LookalikeError('INVALID_REQUEST', { message: 'the JSON body has a "__proto__" or "constructor.prototype" key, which is refused (it could change objects on the server). Send only the fields this route takes, e.g. {"id": "15970", "k": 10}.' }));
    return;
  }
  // Ajv would coerce a null to "" (or 0) and then blame the value for being empty.
  const nulled = value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.keys(value).find((k) => (value as Record<string, unknown>)[k] === null) : undefined;
  if (nulled !== undefined) {
    done(new LookalikeError('INVALID_REQUEST', { message: `the field "${nulled.slice(0, 100)}" is null. Give it a value (e.g. {"id": "15970", "k": 10}) or leave it out.` }));
    return;
  }
  done(null, value);
}

function send(reply: FastifyReply, e: LookalikeError): void {
  if (e.code === 'SERVER_BUSY') reply.header('Retry-After', String(e.params.retryAfter ?? 1));
  reply.status(e.status).send({ error: { code: e.code, message: e.publicMessage } });
}

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (a header over the limit,
 * a garbled request line), in the same JSON shape as every other error.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return;
  const e = err.code === 'HPE_HEADER_OVERFLOW' ? new LookalikeError('HEADERS_TOO_LARGE')
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new LookalikeError('REQUEST_TIMEOUT')
      : new LookalikeError('INVALID_REQUEST', { message: 'the request is not valid HTTP/1.1. Send a request line ("GET /api/health HTTP/1.1") and headers.' });
  const body = JSON.stringify({ error: { code: e.code, message: e.publicMessage } });
  socket.end(`HTTP/1.1 ${e.status} ${STATUS_TEXT[e.status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/**
 * Installs the error handler. `logToStderr`: without a logger, a bug is still written to
 * stderr (one line plus its stack), so "the server log has the details" stays true.
 */
export function installErrorHandling(app: FastifyInstance, ctx: ServerContext, options: { logToStderr?: boolean } = {}): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (clientWentAway(err, request)) {
      // A client that closes the connection mid-upload is not a bug of the server: there is
      // nobody to answer, and nothing worth more than a debug line in the log.
      request.log.debug({ err: err.message }, 'the client closed the connection before its request arrived');
      send(reply, new LookalikeError('INVALID_REQUEST', { message: 'the request was cut off before it arrived whole. Send it again.' }));
      return;
    }
    const e = toLookalikeError(err, ctx, request.headers['content-type']);
    if (e.code === 'INTERNAL') {
      request.log.error({ err }, 'unexpected error');
      if (options.logToStderr) process.stderr.write(`lookalike serve: unexpected error answering ${request.method} ${request.url.slice(0, 200)}: ${err.stack ?? err.message}\n`);
    }
    send(reply, e);
  });
  app.setNotFoundHandler((request, reply) => {
    send(reply, new LookalikeError('ROUTE_NOT_FOUND', { method: request.method, url: request.url.split('?')[0].slice(0, 200) }));
  });
}

/** The request's stream broke because its client closed the connection (Node's "aborted"). */
function clientWentAway(err: Error & { code?: string }, request: FastifyRequest): boolean {
  return (err.code === 'ECONNRESET' && err.message === 'aborted') || (request.raw.destroyed && request.raw.socket?.destroyed === true);
}

/** Fastify's routing errors (a malformed %-escape, an over-long id) through the same mapping. */
export function frameworkErrors(ctx: ServerContext) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    send(reply, toLookalikeError(err, ctx, request.headers['content-type']));
  };
}
