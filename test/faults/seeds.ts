/**
 * The seeds of a fault-suite file: T2_FAULT_SEED=<n> replays one (<n>,<m>,... several); otherwise `count` seeds (T2_FAULT_SEEDS=<n>
 * for more) from T2_FAULT_SEED_BASE (a number, or "random" for a fresh base, printed), by default one fixed
 * per backend so that the suite in CI is the same every run.
 */
export function faultSeeds(backend: string, count: number): number[] {
  const one = process.env.T2_FAULT_SEED;
  if (one) return one.split(',').map(Number);
  const n = Number(process.env.T2_FAULT_SEEDS) || count;
  const given = process.env.T2_FAULT_SEED_BASE;
  const base = given === 'random' ? Math.floor(Math.random() * 1e9) : Number(given) || [...backend].reduce((h, c) => h * 31 + c.charCodeAt(0), 7) % 1e6;
  console.log(`fault suite (${backend}): seeds ${base}..${base + n - 1}`);
  return Array.from({ length: n }, (_, i) => base + i);
}
