// Renders docs/benchmarks.md again from the figures of the last `npm run bench` (docs/benchmarks.json),
// after a change to how they are reported; measures nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderMarkdown } from './report.mjs';

const here = (f) => fileURLToPath(new URL(f, import.meta.url));
writeFileSync(here('../docs/benchmarks.md'), renderMarkdown(JSON.parse(readFileSync(here('../docs/benchmarks.json'), 'utf8'))));
