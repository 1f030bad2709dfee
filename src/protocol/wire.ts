/**
 * The wire protocol's constants, apart from its zod schemas (messages.ts) so that a worker's client can
 * use them without loading zod.
 */
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
