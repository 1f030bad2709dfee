import { execFileSync, spawnSync } from 'node:child_process';

/**
 * Installs Debian packages the integration tests need, if missing. Idempotent and quiet when
 * everything is there, so a fresh machine (or CI) gets what a developer's machine has.
 */
export function ensureDebianPackages(packages: string[]): void {
  const missing = packages.filter((p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout !== 'install ok installed');
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'ignore', env, timeout: 600_000 });
}
