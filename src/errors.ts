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

export class UnknownClusterError extends Twister2Error {
  override readonly code = 'T2_UNKNOWN_CLUSTER';
  override readonly userError = true;
}

export class AuthenticationError extends Twister2Error {
  override readonly code = 'T2_UNAUTHENTICATED';
}

export class ProtocolError extends Twister2Error {
  override readonly code = 'T2_PROTOCOL';
}

export class JobMasterUnreachableError extends Twister2Error {
  override readonly code = 'T2_JOB_MASTER_UNREACHABLE';
}

export class RegistrationError extends Twister2Error {
  override readonly code: string = 'T2_REGISTRATION_REFUSED';
}

/** Another live worker holds this ID. Retryable for a while: it may be a predecessor not yet declared dead. */
export class DuplicateWorkerError extends RegistrationError {
  override readonly code = 'T2_DUPLICATE_WORKER';
}

export class BarrierError extends Twister2Error {
  override readonly code: string = 'T2_BARRIER_FAILED';
}

export class BarrierTimeoutError extends BarrierError {
  override readonly code = 'T2_BARRIER_TIMEOUT';
}

export class DiscoveryTimeoutError extends Twister2Error {
  override readonly code = 'T2_DISCOVERY_TIMEOUT';
}

export class WorkerIdError extends Twister2Error {
  override readonly code = 'T2_WORKER_ID';
}

export class LauncherError extends Twister2Error {
  override readonly code = 'T2_LAUNCHER';
}

export class JobStateError extends Twister2Error {
  override readonly code = 'T2_JOB_STATE';
  override readonly userError = true;
}

/** Maps a wire error (code + message) back to the class that raised it on the other side. */
const byCode: Record<string, new (message: string) => Twister2Error> = {
  T2_UNAUTHENTICATED: AuthenticationError,
  T2_PROTOCOL: ProtocolError,
  T2_REGISTRATION_REFUSED: RegistrationError,
  T2_DUPLICATE_WORKER: DuplicateWorkerError,
  T2_BARRIER_FAILED: BarrierError,
  T2_BARRIER_TIMEOUT: BarrierTimeoutError,
  T2_DISCOVERY_TIMEOUT: DiscoveryTimeoutError,
  T2_JOB_STATE: JobStateError,
  T2_USAGE: UsageError,
};

export function errorFromWire(code: string, message: string): Twister2Error {
  const Cls = byCode[code];
  return Cls ? new Cls(message) : new Twister2Error(`${code}: ${message}`);
}
