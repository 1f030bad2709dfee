// Upload and fan-out of a 50 MB job package to 8 local workers, per uploader, against a plain copy of the same file.
import { randomBytes } from 'node:crypto';
import { copyFile, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { packJob } from '../dist/package/index.js';
import { PackageServer } from '../dist/uploader/http/package-server.js';

const SIZE = 50 * 2 ** 20;
const WORKERS = 8;
const RUNS = Number(process.env.BENCH_UPLOAD_RUNS ?? 3);
const TOKEN = 'bench-package-server-token';
const tmp = await mkdtemp(path.join(os.tmpdir(), 't2-bench-upload-'));
process.env.TWISTER2_HOME = path.join(tmp, 'home');
process.env.TWISTER2_PACKAGE_SERVER_TOKEN = TOKEN;
const { submit } = await import('../dist/index.js');

const job = path.join(tmp, 'job');
await cp(fileURLToPath(new URL('./fixtures/upload-job', import.meta.url)), job, { recursive: true });
await writeFile(path.join(job, 'data.bin'), randomBytes(SIZE));
const spec = { name: 'bench-upload', workers: WORKERS, worker: { module: 'worker.mjs' } };

const server = new PackageServer();
const serverUrl = await server.start({ dir: path.join(tmp, 'store'), token: TOKEN });
const uploaders = {
  local: { kind: 'local' },
  shared: { kind: 'shared', shared: { dir: path.join(tmp, 'shared') } },
  http: { kind: 'http', http: { url: serverUrl } },
};

/** The floor: copying the same package file once, in the same run. */
async function plainCopy() {
  const pkg = await packJob({ source: job, outFile: path.join(tmp, 'floor.tar.gz'), manifestExtra: { spec } });
  const times = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await copyFile(pkg.file, path.join(tmp, 'copy.tar.gz'));
    times.push(performance.now() - t);
    await rm(path.join(tmp, 'copy.tar.gz'));
  }
  return { packageBytes: pkg.size, copyMs: times };
}

/** One job: submit() → package built → uploaded → every worker has it unpacked and running. */
async function oneJob(uploader) {
  const t0 = performance.now();
  const epoch0 = Date.now();
  let uploadedAt = NaN;
  const handle = await submit({
    job,
    spec: { ...spec, uploader },
    onUploadProgress: (sent, total) => {
      if (sent >= total) uploadedAt = performance.now();
    },
  });
  const submitted = performance.now();
  let last = 0;
  for await (const { line } of handle.logs({ follow: true })) {
    const m = /^BENCH-READY (\d+)/.exec(line);
    if (m) last = Math.max(last, Number(m[1]));
  }
  const status = await handle.wait();
  if (status.state !== 'SUCCEEDED') throw new Error(`job ${handle.jobId} ended ${status.state}: ${status.message}`);
  const allReadyMs = last - epoch0;
  const uploadMs = Number.isFinite(uploadedAt) ? uploadedAt - submitted : 0;
  return { packMs: submitted - t0, uploadMs, fanOutMs: allReadyMs - (Number.isFinite(uploadedAt) ? uploadedAt - t0 : submitted - t0), allReadyMs };
}

try {
  const floor = await plainCopy();
  const results = {};
  for (const [kind, uploader] of Object.entries(uploaders)) {
    await oneJob(uploader); // warm-up, not recorded
    results[kind] = [];
    for (let i = 0; i < RUNS; i++) results[kind].push(await oneJob(uploader));
  }
  console.log(JSON.stringify({ upload: { sizeBytes: SIZE, workers: WORKERS, floor, results, serverGets: server.stats().gets } }));
} finally {
  await server.close();
  await rm(tmp, { recursive: true, force: true });
}
