// The peers' Python environment: a virtual environment under ~/.cache/twister2-bench with pinned Dask
// (distributed) and Ray from PyPI, created once and reused while its pins match. The install log is kept
// next to it; a failed install is reported by the bench, which then runs without the peers.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const PINS = { dask: '2026.8.0', distributed: '2026.8.0', ray: '2.60.0' };
const DIR = path.join(os.homedir(), '.cache', 'twister2-bench');
const VENV = path.join(DIR, 'peers-venv');
const STAMP = path.join(VENV, 'twister2-pins.json');
export const INSTALL_LOG = path.join(DIR, 'peers-install.log');

/** { python, versions } when the environment is ready, or { error } saying why it is not. */
export function ensurePeersVenv() {
  const python = path.join(VENV, 'bin', 'python');
  const wanted = JSON.stringify(PINS);
  const ready = () => ({ python, versions: PINS, pythonVersion: spawnSync(python, ['--version'], { encoding: 'utf8' }).stdout.trim() });
  if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === wanted) return ready();
  mkdirSync(DIR, { recursive: true });
  rmSync(VENV, { recursive: true, force: true });
  const log = [];
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15 * 60_000 });
    log.push(`$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}`);
    return r.status === 0;
  };
  const ok = run('python3', ['-m', 'venv', VENV]) &&
    run(python, ['-m', 'pip', 'install', '--quiet', ...Object.entries(PINS).map(([p, v]) => `${p}==${v}`)]);
  writeFileSync(INSTALL_LOG, log.join('\n'));
  if (!ok) {
    const tail = log.at(-1)?.trim().split('\n').slice(-3).join(' ') ?? '';
    return { error: `could not install ${Object.entries(PINS).map(([p, v]) => `${p} ${v}`).join(', ')} into ${VENV} (log: ${INSTALL_LOG}): ${tail.slice(0, 300)}` };
  }
  writeFileSync(STAMP, wanted);
  return ready();
}
