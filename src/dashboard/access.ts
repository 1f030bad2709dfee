import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const TOKEN_FILE = 'token';
const REPORT_KEY_FILE = 'report-key';

/**
 * The dashboard's credentials, all in 0600 files of its data directory:
 * - the access token, for people and scripts (every page and API call); rotating it (a new file) takes
 *   effect at the next request, and ends every session made with the old one;
 * - the report key, from which each job's report token is derived (HMAC of the job ID), so that a job
 *   master's token can report for its own job only, and stays valid across dashboard restarts and
 *   access-token rotations.
 */
export class DashboardAccess {
  private token = '';
  private tokenMtime = -1;
  private readonly reportKey: Buffer;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!exists(this.tokenFile)) rotateToken(dir);
    const keyFile = path.join(dir, REPORT_KEY_FILE);
    if (!exists(keyFile)) writeSecret(keyFile, randomBytes(32).toString('base64url'));
    this.reportKey = Buffer.from(readFileSync(keyFile, 'utf8').trim());
  }

  get tokenFile(): string {
    return path.join(this.dir, TOKEN_FILE);
  }

  /** The access token as the file has it now. */
  accessToken(): string {
    const mtime = statSync(this.tokenFile).mtimeMs;
    if (mtime !== this.tokenMtime) {
      this.token = readFileSync(this.tokenFile, 'utf8').trim();
      this.tokenMtime = mtime;
    }
    return this.token;
  }

  checkAccessToken(given: string | undefined): boolean {
    return given !== undefined && same(given, this.accessToken());
  }

  /** A session cookie's value: derived from the token, so that rotating the token ends every session. */
  sessionValue(): string {
    return createHmac('sha256', this.accessToken()).update('twister2 dashboard session').digest('base64url');
  }

  checkSession(given: string | undefined): boolean {
    return given !== undefined && same(given, this.sessionValue());
  }

  reportToken(jobId: string): string {
    return createHmac('sha256', this.reportKey).update(`report ${jobId}`).digest('base64url');
  }

  checkReportToken(jobId: string, given: string | undefined): boolean {
    return given !== undefined && same(given, this.reportToken(jobId));
  }
}

/** Writes a new access token (mode 0600) and returns it. */
export function rotateToken(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const token = randomBytes(24).toString('base64url');
  writeSecret(path.join(dir, TOKEN_FILE), token);
  return token;
}

function writeSecret(file: string, value: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, value + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

function exists(file: string): boolean {
  try {
    statSync(file);
    return true;
  } catch {
    return false;
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
