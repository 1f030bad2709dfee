import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureDebianPackages } from './debian.js';

/**
 * Debian's s3cmd as an independent S3 client, to check what the code under test did (and to make buckets)
 * through an implementation that shares nothing with the AWS SDK.
 */

export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface S3cmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

let configDir: string | undefined;
const configs = new Map<string, string>();

function configFor(server: S3Endpoint): string {
  const id = `${server.endpoint} ${server.accessKeyId}`;
  const known = configs.get(id);
  if (known) return known;
  if (!configDir) {
    configDir = mkdtempSync(path.join(os.tmpdir(), 'twister2-s3cmd-'));
    const dir = configDir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const url = new URL(server.endpoint);
  const file = path.join(configDir, `s3cfg-${configs.size}`);
  // host_bucket without %(bucket)s means path-style requests.
  const lines = [
    '[default]',
    `access_key = ${server.accessKeyId}`,
    `secret_key = ${server.secretAccessKey}`,
    `host_base = ${url.host}`,
    `host_bucket = ${url.host}`,
    `use_https = ${url.protocol === 'https:' ? 'True' : 'False'}`,
    'signature_v2 = False',
    `bucket_location = ${server.region}`,
    'check_ssl_certificate = False',
    'progress_meter = False',
    '',
  ];
  writeFileSync(file, lines.join('\n'), { mode: 0o600 });
  configs.set(id, file);
  return file;
}

/** Runs `s3cmd -c <config for server> ...args`. */
export function s3cmd(server: S3Endpoint, args: string[]): S3cmdResult {
  ensureDebianPackages(['s3cmd']);
  const r = spawnSync('s3cmd', ['-c', configFor(server), ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(server: S3Endpoint, args: string[]): string {
  const r = s3cmd(server, args);
  if (r.code !== 0) throw new Error(`s3cmd ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

function splitUrl(url: string): { bucket: string } {
  const m = /^s3:\/\/([^/]+)/.exec(url);
  if (!m?.[1]) throw new Error(`not an s3:// URL: ${url}`);
  return { bucket: m[1] };
}

/** The keys of all objects under `s3://bucket/prefix`, recursively. */
export function s3ls(server: S3Endpoint, url: string): string[] {
  const { bucket } = splitUrl(url);
  const base = `s3://${bucket}/`;
  return must(server, ['ls', '--recursive', url])
    .split('\n')
    .map((line) => {
      const at = line.indexOf(base);
      return at < 0 ? undefined : line.slice(at + base.length);
    })
    .filter((k): k is string => k !== undefined && k !== '');
}

/** The multipart uploads in progress in a bucket (`s3cmd multipart s3://bucket`). */
export function s3multipartUploads(server: S3Endpoint, bucket: string): { key: string; uploadId: string }[] {
  const base = `s3://${bucket}/`;
  const out: { key: string; uploadId: string }[] = [];
  for (const line of must(server, ['multipart', base]).split('\n')) {
    const cols = line.split('\t');
    const at = cols.findIndex((c) => c.startsWith(base));
    const id = cols[at + 1];
    if (at >= 0 && id) out.push({ key: cols[at]!.slice(base.length), uploadId: id.trim() });
  }
  return out;
}
