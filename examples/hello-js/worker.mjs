/** @param {import('twister2').WorkerContext} ctx */
export default async function worker(ctx) {
  const peers = await ctx.workers(); // waits until all workers joined
  ctx.log.info(`worker ${ctx.workerId} of ${ctx.numWorkers} on ${ctx.volumes.work.split('/').slice(-3).join('/')}; peers: ${peers.map((p) => p.workerId).join(',')}`);
  const rounds = Number(ctx.args[0] ?? 3);
  for (let round = 1; round <= rounds; round++) {
    await ctx.barrier(`round-${round}`);
    ctx.log.info(`passed barrier round-${round}`);
  }
}
