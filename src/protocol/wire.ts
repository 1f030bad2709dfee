/**
 * The wire protocol's constants, apart from its zod schemas (messages.ts) so that a worker's client can
 * use them without loading zod.
 */
import { MessageTooLargeError } from '../errors.js';
import type { JobState } from './messages.js';

/** 2 added the channel (docs/protocol.md); a job master still serves clients of version 1. */
export const PROTOCOL_VERSION = 2;
export const SUPPORTED_PROTOCOL_VERSIONS: readonly string[] = ['1', '2'];
/** The Upgrade token of the channel (GET /v1/channel). */
export const CHANNEL_UPGRADE = 'twister2-channel';
export const PROTOCOL_HEADER = 'twister2-protocol';
/**
 * The job secret in a header of its own, for a job master reached through a proxy that takes
 * `Authorization` for itself (the Kubernetes API server's service proxy authenticates with it and drops it).
 */
export const JOB_TOKEN_HEADER = 'twister2-job-token';
export const TERMINAL_JOB_STATES: readonly JobState[] = ['SUCCEEDED', 'FAILED', 'KILLED'];
/** A name of a port a worker publishes (worker.ports, ctx.publishPorts): it also becomes TWISTER2_PORT_<NAME>. */
export const PORT_NAME = /^[a-z][a-z0-9-]{0,14}$/;
/** The largest message (its data as JSON) between the driver and a worker: it must fit one channel frame. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
/** How long one receive call waits for a message at most; a receiver calls again. */
export const MAX_RECEIVE_WAIT_MS = 30_000;

/** The data's JSON and its size in bytes; refused (MessageTooLargeError) past MAX_MESSAGE_BYTES or when it is not JSON. */
export function messageBytes(data: unknown): number {
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (err) {
    throw new MessageTooLargeError(`a message's data must be JSON: ${(err as Error).message}`);
  }
  if (json === undefined) throw new MessageTooLargeError(`a message's data must be JSON (a value, an array or an object), not ${typeof data}`);
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_MESSAGE_BYTES) {
    throw new MessageTooLargeError(`a message is ${bytes} bytes of JSON, more than the ${MAX_MESSAGE_BYTES} a message may hold; send a reference (a path in the shared volume, an object key) instead of the data`);
  }
  return bytes;
}
