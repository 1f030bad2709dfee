/**
 * One seed per run for property tests, printed so that a failure can be replayed exactly:
 * `T2_FC_SEED=<seed> npx vitest run --config vitest.unit.config.ts <file>`.
 */
export function propertySeed(suite: string): number {
  const given = process.env.T2_FC_SEED;
  const seed = given !== undefined && given !== '' ? Number(given) : Math.floor(Math.random() * 2 ** 31);
  console.log(`${suite}: fast-check seed ${seed} (replay with T2_FC_SEED=${seed})`);
  return seed;
}
