// Holds the data points j (of 0..999) with j % numWorkers == its ID, and answers each epoch's estimate
// with the gradient of the squared error over them. The driver says how many workers share the data.
const POINTS = 1000;
const value = (j) => (j * 37) % 101;

export default async (ctx) => {
  for await (const { data } of ctx.messages()) {
    if (data.stop) return;
    let grad = 0;
    let count = 0;
    for (let j = ctx.workerId; j < POINTS; j += data.numWorkers) {
      grad += 2 * (data.x - value(j));
      count++;
    }
    await ctx.send({ epoch: data.epoch, grad, count });
  }
};
