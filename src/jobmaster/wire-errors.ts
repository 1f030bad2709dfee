import type { z } from 'zod';
import { Twister2Error } from '../errors.js';

/** An error the job master answers with: an HTTP status for the HTTP routes, and a stable code for both transports. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const statusByCode: Record<string, number> = {
  T2_REGISTRATION_REFUSED: 409,
  T2_DUPLICATE_WORKER: 409,
  T2_WORKER_COMPLETED: 409,
  T2_PROTOCOL: 409,
  T2_JOB_STATE: 409,
  T2_CAPABILITY: 409,
  T2_BARRIER_FAILED: 409,
  // Not 408: that status means the server gave up on reading the request, and clients retry it.
  T2_BARRIER_TIMEOUT: 409,
  T2_DISCOVERY_TIMEOUT: 409,
  T2_MESSAGE_TOO_LARGE: 413,
  // Not 503: the job master is fine; the recipient is slow. The sender may try again later.
  T2_INBOX_FULL: 429,
  T2_MESSAGE_REFUSED: 409,
  // Another job master took over: the caller should find it, as after a restart.
  T2_JOB_MASTER_FENCED: 503,
};

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (Twister2Error.is(err)) return new HttpError(statusByCode[err.code] ?? 500, err.code, err.message);
  return new HttpError(500, 'T2_INTERNAL', err instanceof Error ? err.message : String(err));
}

/** Checks a request against its schema; the first problem, with its field path, is the answer. */
export function checked<S extends z.ZodType>(schema: S, json: unknown): z.infer<S> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new HttpError(400, 'T2_PROTOCOL', `bad request: ${first?.path.join('.') || 'body'}: ${first?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
