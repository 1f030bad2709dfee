import { z } from 'zod';
import { parseBytes } from './units.js';

/**
 * A spec field holding a byte size ("512Mi", "2Gi", "1G" or a number of bytes), parsed by parseBytes like
 * every other size twister2 reads. `examples` fit the field; `positive` refuses 0.
 */
export function sizeSchema(examples: string[], opts: { positive?: boolean } = {}) {
  const shown = examples.map((e) => `"${e}"`).join(', ');
  return z.union([z.string(), z.number()], { error: `expected a size such as ${shown} or a number of bytes` }).transform((v, ctx) => {
    const n = parseBytes(v);
    if (n === undefined || (opts.positive && n <= 0)) {
      const what = n === undefined ? 'is not a size' : 'is no size at all: give more than 0 bytes';
      ctx.issues.push({ code: 'custom', input: v, message: `"${v}" ${what}; use e.g. ${shown} or a number of bytes` });
      return z.NEVER;
    }
    return n;
  });
}
