/**
 * Every error twister2 raises on purpose is a Twister2Error with a stable `code`.
 * `userError` marks mistakes the user can fix (bad spec, bad package, bad flag): the CLI prints
 * the message without a stack trace and exits 2. Codes are part of the public API: never reuse one.
 */
export const ExitCode = {
  succeeded: 0,
  jobFailed: 1,
  userError: 2,
  jobKilled: 3,
  infrastructure: 4,
  interrupted: 130,
} as const;

export interface Twister2ErrorOptions {
  cause?: unknown;
  hint?: string;
}

export class Twister2Error extends Error {
  readonly code: string = 'T2_ERROR';
  readonly userError: boolean = false;
  readonly hint: string | undefined;

  constructor(message: string, options: Twister2ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }

  get exitCode(): number {
    return this.userError ? ExitCode.userError : ExitCode.infrastructure;
  }

  /** Checks by code, so it works across two copies of the package. */
  static is(err: unknown, code?: string): err is Twister2Error {
    if (typeof err !== 'object' || err === null) return false;
    const c = (err as { code?: unknown }).code;
    return typeof c === 'string' && c.startsWith('T2_') && (code === undefined || c === code);
  }
}

/** One field of the job spec is wrong: `path` names it, the message says what is allowed. */
export interface SpecProblem {
  path: string;
  message: string;
}

export class SpecError extends Twister2Error {
  override readonly code = 'T2_SPEC_INVALID';
  override readonly userError = true;
  constructor(
    readonly problems: SpecProblem[],
    readonly source?: string,
  ) {
    const where = source ? ` in ${source}` : '';
    const lines = problems.map((p) => `  - ${p.path || '(root)'}: ${p.message}`);
    super(`invalid job spec${where}:\n${lines.join('\n')}`);
  }
}

/** The options of a library call (`submit()`, `scale()`) are wrong: `problems` name each option, the message says what is allowed. */
export class OptionsError extends Twister2Error {
  override readonly code = 'T2_OPTIONS_INVALID';
  override readonly userError = true;
  constructor(
    readonly problems: SpecProblem[],
    readonly call: string,
  ) {
    super(`invalid options to ${call}:\n${problems.map((p) => `  - ${p.path || '(root)'}: ${p.message}`).join('\n')}`);
  }
}

export class PackageError extends Twister2Error {
  override readonly code = 'T2_PACKAGE_INVALID';
  override readonly userError = true;
}

export class UsageError extends Twister2Error {
  override readonly code = 'T2_USAGE';
  override readonly userError = true;
}

export class JobNotFoundError extends Twister2Error {
  override readonly code = 'T2_JOB_NOT_FOUND';
  override readonly userError = true;
}

/** A job directory whose record or final status is missing or unreadable: not a job twister2 can act on. */
export class JobDirectoryError extends Twister2Error {
  override readonly code = 'T2_JOB_DIR_INVALID';
  override readonly userError = true;
}

export class UnknownClusterError extends Twister2Error {
  override readonly code = 'T2_UNKNOWN_CLUSTER';
  override readonly userError = true;
}

export class AuthenticationError extends Twister2Error {
  override readonly code = 'T2_UNAUTHENTICATED';
}

/** A valid worker token on a route that needs the job's admin secret (scale, kill, status): HTTP 403. */
export class ForbiddenError extends Twister2Error {
  override readonly code = 'T2_FORBIDDEN';
}

export class ProtocolError extends Twister2Error {
  override readonly code = 'T2_PROTOCOL';
}

export class JobMasterUnreachableError extends Twister2Error {
  override readonly code = 'T2_JOB_MASTER_UNREACHABLE';
}

/** A job master that another one (a newer epoch) replaced: it must stop acting for the job. */
export class JobMasterFencedError extends Twister2Error {
  override readonly code = 'T2_JOB_MASTER_FENCED';
}

/** The job was stopped on purpose (a cancelled queued job, an aborted submit): exit code 3. */
export class JobKilledError extends Twister2Error {
  override readonly code = 'T2_JOB_KILLED';
  override get exitCode(): number {
    return ExitCode.jobKilled;
  }
}

export class RegistrationError extends Twister2Error {
  override readonly code: string = 'T2_REGISTRATION_REFUSED';
}

/** Another live worker holds this ID. Retryable for a while: it may be a predecessor not yet declared dead. */
export class DuplicateWorkerError extends RegistrationError {
  override readonly code = 'T2_DUPLICATE_WORKER';
}

/** The worker with this ID completed already: a restarted copy of it (a kubelet's restart) has nothing to do. */
export class WorkerCompletedError extends RegistrationError {
  override readonly code = 'T2_WORKER_COMPLETED';
}

/** A barrier failed or timed out: the worker that waited cannot go on, so its job fails (exit 1, not an infrastructure problem). */
export class BarrierError extends Twister2Error {
  override readonly code: string = 'T2_BARRIER_FAILED';
  override get exitCode(): number {
    return ExitCode.jobFailed;
  }
}

export class BarrierTimeoutError extends BarrierError {
  override readonly code = 'T2_BARRIER_TIMEOUT';
}

/** A message over the size limit (MAX_MESSAGE_BYTES of JSON), or data that is not JSON. */
export class MessageTooLargeError extends Twister2Error {
  override readonly code = 'T2_MESSAGE_TOO_LARGE';
  override readonly userError = true;
}

/** The recipient's inbox holds as many messages as it may: it receives more slowly than it is sent to. Retry later. */
export class InboxFullError extends Twister2Error {
  override readonly code = 'T2_INBOX_FULL';
}

/** No such recipient now: not a worker of the job, one that completed or was scaled away, or no driver. */
export class MessageRefusedError extends Twister2Error {
  override readonly code = 'T2_MESSAGE_REFUSED';
  override readonly userError = true;
}

export class DiscoveryTimeoutError extends Twister2Error {
  override readonly code = 'T2_DISCOVERY_TIMEOUT';
}

export class WorkerIdError extends Twister2Error {
  override readonly code = 'T2_WORKER_ID';
}

/** A worker runtime's environment lacks a variable or holds a broken one: it was not started by a twister2 launcher (of this version). */
export class WorkerEnvironmentError extends Twister2Error {
  override readonly code = 'T2_WORKER_ENV';
}

export class LauncherError extends Twister2Error {
  override readonly code = 'T2_LAUNCHER';
}

export class JobStateError extends Twister2Error {
  override readonly code = 'T2_JOB_STATE';
  override readonly userError = true;
}

/** The job's cluster cannot do what was asked (scale an MPI job, say); refused before anything changed. */
export class CapabilityError extends Twister2Error {
  override readonly code = 'T2_CAPABILITY';
  override readonly userError = true;
}

/** The job's job master is gone and recorded no final state (`twister2 list` shows such a job as LOST). */
export class JobLostError extends Twister2Error {
  override readonly code = 'T2_JOB_LOST';
}

/** Maps a wire error (code + message) back to the class that raised it on the other side. */
const byCode: Record<string, new (message: string) => Twister2Error> = {
  T2_UNAUTHENTICATED: AuthenticationError,
  T2_FORBIDDEN: ForbiddenError,
  T2_PROTOCOL: ProtocolError,
  T2_REGISTRATION_REFUSED: RegistrationError,
  T2_DUPLICATE_WORKER: DuplicateWorkerError,
  T2_WORKER_COMPLETED: WorkerCompletedError,
  T2_BARRIER_FAILED: BarrierError,
  T2_BARRIER_TIMEOUT: BarrierTimeoutError,
  T2_DISCOVERY_TIMEOUT: DiscoveryTimeoutError,
  T2_MESSAGE_TOO_LARGE: MessageTooLargeError,
  T2_INBOX_FULL: InboxFullError,
  T2_MESSAGE_REFUSED: MessageRefusedError,
  T2_JOB_STATE: JobStateError,
  T2_CAPABILITY: CapabilityError,
  T2_USAGE: UsageError,
};

export function errorFromWire(code: string, message: string): Twister2Error {
  const Cls = byCode[code];
  return Cls ? new Cls(message) : new Twister2Error(`${code}: ${message}`);
}

/** Putting the job package where workers can fetch it failed. Names the URL and the HTTP status or cause, never a credential. */
export class UploadError extends Twister2Error {
  override readonly code = 'T2_UPLOAD';
  constructor(
    message: string,
    readonly url?: string,
    readonly status?: number,
    options: Twister2ErrorOptions = {},
  ) {
    super(message, options);
  }
}

export interface SftpUploadErrorOptions extends Twister2ErrorOptions {
  /** The host (host:port) the error is about, when it is about one. */
  host?: string;
}

/** Copying the job package to hosts over SSH/SFTP failed. `host` names the host (host:port) when one is at fault. */
export class SftpUploadError extends Twister2Error {
  override readonly code: string = 'T2_SFTP_UPLOAD_FAILED';
  readonly host: string | undefined;
  constructor(message: string, options: SftpUploadErrorOptions = {}) {
    super(message, options);
    this.host = options.host;
  }
}

/** A host could not be reached (refused, no route, DNS, no SSH handshake within the connect timeout). */
export class HostUnreachableError extends SftpUploadError {
  override readonly code = 'T2_HOST_UNREACHABLE';
}

/** A host refused our SSH key. The message names the host and the key file, never the key. */
export class HostAuthenticationError extends SftpUploadError {
  override readonly code = 'T2_HOST_AUTH_FAILED';
  override readonly userError = true;
}

/** A host's key is not in, or does not match, the known_hosts file. */
export class HostKeyRejectedError extends SftpUploadError {
  override readonly code = 'T2_HOST_KEY_REJECTED';
  override readonly userError = true;
}

/** The target directory on a host cannot be created or written. */
export class HostPermissionError extends SftpUploadError {
  override readonly code = 'T2_HOST_PERMISSION_DENIED';
  override readonly userError = true;
}

/** The copy on a host does not have the package's sha256. */
export class HostChecksumError extends SftpUploadError {
  override readonly code = 'T2_HOST_CHECKSUM_MISMATCH';
}

/** The caller aborted the copy. */
export class SftpUploadAbortedError extends SftpUploadError {
  override readonly code = 'T2_SFTP_UPLOAD_ABORTED';
}

export interface S3ErrorDetails {
  bucket: string;
  key?: string;
  /** The endpoint URL, or the AWS regional endpoint when none was configured. */
  endpoint: string;
  /** S3's error code (NoSuchBucket, AccessDenied, SignatureDoesNotMatch...) or the network error code. */
  s3Code?: string;
  /** The HTTP status, when S3 answered. */
  status?: number;
}

/** An S3 (or S3-compatible) request failed. The message names the bucket, key, endpoint and S3's error code and message; never a credential. */
export class S3Error extends Twister2Error {
  override readonly code: string = 'T2_S3';
  readonly bucket: string;
  readonly key: string | undefined;
  readonly endpoint: string;
  readonly s3Code: string | undefined;
  readonly status: number | undefined;
  constructor(message: string, details: S3ErrorDetails, options: Twister2ErrorOptions = {}) {
    super(message, options);
    this.bucket = details.bucket;
    this.key = details.key;
    this.endpoint = details.endpoint;
    this.s3Code = details.s3Code;
    this.status = details.status;
  }
}

/** S3 refused the credentials or the permission (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied, an expired token, none found): the user fixes it. */
export class S3AccessError extends S3Error {
  override readonly code = 'T2_S3_ACCESS';
  override readonly userError = true;
}

/** The caller aborted the upload; what was sent so far has been removed. */
export class S3UploadAbortedError extends S3Error {
  override readonly code = 'T2_S3_UPLOAD_ABORTED';
}
