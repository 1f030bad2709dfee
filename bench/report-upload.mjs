// The upload benchmark's part of docs/benchmarks.md and of the summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';

const MiB = 2 ** 20;

function figures(u) {
  const copy = summarize(u.floor.copyMs);
  const copyRate = u.floor.packageBytes / MiB / (copy.median / 1000);
  return Object.entries(u.results).map(([kind, runs]) => {
    const upload = summarize(runs.map((r) => r.uploadMs));
    return {
      kind,
      runs: runs.length,
      pack: summarize(runs.map((r) => r.packMs)),
      upload,
      rate: upload.median > 0 ? u.floor.packageBytes / MiB / (upload.median / 1000) : NaN,
      fanOut: summarize(runs.map((r) => r.fanOutMs)),
      allReady: summarize(runs.map((r) => r.allReadyMs)),
      ratio: upload.median > 0 ? upload.median / copy.median : NaN,
      copy,
      copyRate,
    };
  });
}

export function uploadSection(u) {
  if (!u || u.error) return `Not measured: ${u?.error ?? 'no data'}.`;
  const f = figures(u);
  const c = f[0];
  const rows = f.map((x) =>
    `| ${x.kind} | ${x.runs} | ${fmtSummary(x.pack)} | ${fmtSummary(x.upload)} | ${fmt(x.rate)} | ${fmt(x.ratio)}× | ${fmtSummary(x.fanOut)} | **${fmtSummary(x.allReady)}** |`,
  );
  return [
    `Floor, same run: a plain copy (\`fs.copyFile\`) of the ${fmt(u.floor.packageBytes / MiB)} MiB package took ${fmtSummary(c.copy)} ms (${fmt(c.copyRate)} MiB/s).`,
    '',
    '| uploader | runs | build package | upload | upload MiB/s | upload / plain copy | fan-out to all workers | submit → all workers running |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    'Times in ms, median (min–max). "Build package" is `submit()` until it returned (spec, packing with sha256s, gzip). "Upload" ends at',
    'the last progress callback (`local` has none: workers read the job directory). "Fan-out" runs from the end of the upload until the',
    `last of the ${u.workers} workers started its program: one worker per host downloads (GET count per job on the package server: ${Object.values(u.serverGets).join(', ')}),`,
    'verifies and unpacks while the others wait, then every worker process starts — on 2 cores, mostly the workers\' own start-up.',
  ].join('\n');
}

export function uploadSummary(u) {
  if (!u || u.error) return [`  upload: FAILED: ${u?.error ?? 'no data'}`];
  return figures(u).map(
    (x) => `  upload ${x.kind.padEnd(7)} upload ${fmt(x.upload.median)} ms (${fmt(x.rate)} MiB/s, ${fmt(x.ratio)}× a plain copy), all ${'workers'} running ${fmt(x.allReady.median)} ms`,
  );
}
