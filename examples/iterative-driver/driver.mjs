// Gradient descent on the mean squared error of the workers' data points: each epoch the driver broadcasts
// the estimate, sums the workers' partial gradients and takes a step. Halfway it scales the job up by two
// workers (a cluster that cannot scale refuses, and the job carries on with the workers it has).
export default async (ctx) => {
  const epochs = Number(ctx.args[0] ?? 8);
  let x = 0;
  for (let epoch = 1; epoch <= epochs; epoch++) {
    if (epoch === Math.ceil(epochs / 2)) {
      await ctx.scale(ctx.numWorkers + 2).then(
        () => ctx.log.info(`epoch ${epoch}: scaled up to ${ctx.numWorkers} workers`),
        (err) => ctx.log.info(`epoch ${epoch}: cannot scale (${err.message}); carrying on`),
      );
    }
    const workers = await ctx.waitForWorkers(ctx.numWorkers);
    const asked = await ctx.broadcast({ epoch, x, numWorkers: workers.length });
    let grad = 0;
    let count = 0;
    let answers = 0;
    for await (const { data } of ctx.messages()) {
      grad += data.grad;
      count += data.count;
      if (++answers === asked.length) break;
    }
    x -= 0.3 * (grad / count);
    ctx.log.info(`epoch ${epoch}: ${asked.length} workers, ${count} points, estimate ${x.toFixed(4)}`);
  }
  await ctx.broadcast({ stop: true });
  return { estimate: Number(x.toFixed(4)), workers: ctx.numWorkers };
};
