/**
 * One place turns every failure into `{ error: { code, message } }` with the right status:
 * Lookalike's own errors, request validation, multipart limits, body parsing and bugs.
 * Messages say what to change, in plain words; internals (stack traces, paths) stay in
 * the server log.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { isLookalikeError, LookalikeError } from '../errors.js';
import type { ServerContext } from './context.js';
import { UPLOAD_KEYWORD } from './schemas.js';

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
      return `${field} must be ${p.type === 'integer' ? 'a whole number' : p.type === 'number' ? 'a number' : p.type === 'array' ? 'a list' : `a ${p.type}`}.`;
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
      return new LookalikeError('INVALID_REQUEST', { message: 'the request body is too large. Photos go as multipart/form-data in the field "image"; JSON bodies are small.' });
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
      return new LookalikeError('INVALID_REQUEST', { message: 'the multipart form could not be read. Send the photo as multipart/form-data with the field "image".' });
  }
  if (fe instanceof SyntaxError && fe.statusCode === 400) {
    return new LookalikeError('INVALID_REQUEST', { message: 'the body is not valid JSON. Send e.g. {"id": "15970", "k": 10}.' });
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Fastify/busboy client errors not listed above (rare): their text is about the request.
    return new LookalikeError('INVALID_REQUEST', { message: `the request could not be read: ${fe.message}.` });
  }
  return new LookalikeError('INTERNAL', {}, { cause: err });
}

export function installErrorHandling(app: FastifyInstance, ctx: ServerContext): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const e = toLookalikeError(err, ctx, request.headers['content-type']);
    if (e.code === 'INTERNAL') request.log.error({ err }, 'unexpected error');
    if (e.code === 'SERVER_BUSY') reply.header('Retry-After', String(e.params.retryAfter ?? 1));
    reply.status(e.status).send({ error: { code: e.code, message: e.message } });
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new LookalikeError('ROUTE_NOT_FOUND', { method: request.method, url: request.url.split('?')[0].slice(0, 200) });
    reply.status(e.status).send({ error: { code: e.code, message: e.message } });
  });
}
