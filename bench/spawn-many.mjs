// The floor of the start-up benches: n processes started at once, waited for until all exited.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { childrenCpuMs } from './sysinfo.mjs';

/** Starts n processes with these node arguments at once and waits until all exited: wall ms, CPU ms per process. */
export async function spawnMany(n, args) {
  const t0 = performance.now();
  const cpu0 = childrenCpuMs();
  await Promise.all(
    Array.from({ length: n }, () => new Promise((resolve, reject) => {
      const child = spawn(process.execPath, args, { stdio: 'ignore' });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`floor process exited with ${code}`))));
    })),
  );
  return { wallMs: performance.now() - t0, cpuMs: (childrenCpuMs() - cpu0) / n };
}
