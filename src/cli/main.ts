import yargs, { type Argv } from 'yargs';
import { ExitCode, UsageError } from '../errors.js';
import { report } from './report-error.js';
import { CLUSTER_KINDS } from '../spec/cluster-kinds.js';
import { exitWhenFlushed, toleratePipeErrors } from './output.js';

// Commands are loaded when used: `twister2 barrier` runs inside workers, often, and must start fast.
const submitCmd = () => import('./commands/submit.js');
const manage = () => import('./commands/manage.js');
const inWorker = () => import('./commands/in-worker.js');
const internal = () => import('./commands/internal.js');
const packageServer = () => import('./commands/package-server.js');
const dashboardCmd = () => import('./commands/dashboard.js');

/** Runs the CLI and exits the process with a code that tells how it went (see ExitCode). */
export function main(argv: string[]): void {
  toleratePipeErrors();
  // Exit explicitly: idle keep-alive sockets or a finished job's timers must not hold the CLI open.
  run(argv).then(
    (code) => exitWhenFlushed(code),
    (err: unknown) => exitWhenFlushed(report(err)),
  );
}

async function run(argv: string[]): Promise<number> {
  let code: number = ExitCode.succeeded;
  const set = (c: number): void => {
    code = c;
  };
  const cli: Argv = yargs(argv)
    .scriptName('twister2')
    .usage('$0 <command> [options]\n\nRun big-data and HPC jobs on local processes, Kubernetes, Slurm, Nomad or OpenMPI the same way.')
    .command(
      'submit <job>',
      'submit a job (a directory, .zip or .tar.gz) and follow it to the end',
      (y) =>
        y
          .positional('job', { type: 'string', demandOption: true, describe: 'the job directory or archive' })
          .option('cluster', { choices: CLUSTER_KINDS, requiresArg: true, describe: 'where to run (overrides the spec)' })
          .option('workers', { type: 'string', requiresArg: true, describe: 'number of workers (overrides the spec)' })
          .option('detach', { type: 'boolean', default: false, describe: 'run the job master in its own process and return at once' })
          .option('dashboard', { type: 'string', requiresArg: true, describe: 'report to this dashboard (twister2 dashboard), e.g. http://127.0.0.1:8642 (overrides the spec and TWISTER2_DASHBOARD_URL)' })
          .option('json', { type: 'boolean', default: false, describe: 'print the final status as JSON on stdout' }),
      async (a) => set(await (await submitCmd()).submitCommand(a)),
    )
    .command('status <job>', 'show a job and its workers', (y) => y.positional('job', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }), async (a) => set(await (await manage()).statusCommand(a)))
    .command('list', 'list the jobs of this machine', (y) => y.option('json', { type: 'boolean', default: false }), async (a) => set(await (await manage()).listCommand(a)))
    .command('logs <job>', "print a job's worker output", (y) => y.positional('job', { type: 'string', demandOption: true }).option('follow', { alias: 'f', type: 'boolean', default: false }), async (a) => set(await (await manage()).logsCommand(a)))
    .command('kill <job>', 'kill a job and release everything it holds', (y) => y.positional('job', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }), async (a) => set(await (await manage()).killCommand(a)))
    .command('scale <job> <workers>', 'change the number of workers of a running job', (y) => y.positional('job', { type: 'string', demandOption: true }).positional('workers', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }), async (a) => set(await (await manage()).scaleCommand(a)))
    .command('workers [job]', "list a job's workers (inside a worker: its own job)", (y) => y.positional('job', { type: 'string' }).option('json', { type: 'boolean', default: false }).option('wait', { type: 'boolean', default: false, describe: 'wait until all workers joined' }), async (a) => set(await (await inWorker()).workersCommand(a)))
    .command('barrier <name>', 'inside a command worker: wait until every worker reached this barrier', (y) => y.positional('name', { type: 'string', demandOption: true }).option('timeout', { type: 'string', requiresArg: true, describe: 'e.g. 30s (default: the spec\'s timeouts.barrier)' }), async (a) => set(await (await inWorker()).barrierCommand(a)))
    .command('ports', 'inside a command worker: publish ports its program opened, for discovery', (y) =>
      y
        .command('publish <ports..>', 'publish name=port pairs (e.g. data=5000); peers see them in `twister2 workers --json`', (p) => p.positional('ports', { type: 'string', array: true, demandOption: true }), async (a) => set(await (await inWorker()).publishPortsCommand(a)))
        .demandCommand(1, 'give a subcommand: twister2 ports publish name=port ...'),
    )
    .command('message', 'inside a command worker: exchange messages with the job\'s driver', (y) =>
      y
        .command('send <json>', 'send one message (any JSON; - reads it from stdin) to the driver', (p) => p.positional('json', { type: 'string', demandOption: true }), async (a) => set(await (await inWorker()).messageSendCommand(a)))
        .command(
          'recv',
          'print the driver\'s next message as one JSON line {"from":"driver","data":...}; exit 1 if none came within --timeout, 3 if none will come',
          (p) => p.option('timeout', { type: 'string', requiresArg: true, describe: 'how long to wait, e.g. 30s (default 30s)' }),
          async (a) => set(await (await inWorker()).messageRecvCommand(a)),
        )
        .demandCommand(1, 'give a subcommand: twister2 message send <json> | twister2 message recv'),
    )
    .command(
      'package-server',
      'run a package server that stores job packages for workers to download (token in TWISTER2_PACKAGE_SERVER_TOKEN)',
      (y) =>
        y
          .option('dir', { type: 'string', requiresArg: true, demandOption: true, describe: 'directory where packages are stored (created if missing)' })
          .option('host', { type: 'string', requiresArg: true, default: '127.0.0.1', describe: 'address to listen on (0.0.0.0 for all interfaces)' })
          .option('port', { type: 'string', requiresArg: true, default: '8080', describe: 'port to listen on (0 picks a free one)' })
          .option('max-size', { type: 'string', requiresArg: true, default: '2Gi', describe: 'largest package accepted, e.g. 512Mi, 2Gi' }),
      async (a) => set(await (await packageServer()).packageServerCommand(a)),
    )
    .command(
      'dashboard',
      'run the web dashboard: watch and steer the jobs of this machine and those reporting to it (prints its login link)',
      (y) =>
        y
          .option('host', { type: 'string', requiresArg: true, default: '127.0.0.1', describe: 'address to listen on (job masters elsewhere need one they can reach)' })
          .option('port', { type: 'string', requiresArg: true, default: '8642', describe: 'port to listen on (0 picks a free one)' })
          .option('data-dir', { type: 'string', requiresArg: true, describe: 'where its token, key and history are kept (default $TWISTER2_HOME/dashboard)' })
          .option('rotate-token', { type: 'boolean', default: false, describe: 'write a new access token and exit (a running dashboard takes it at once)' }),
      async (a) => set(await (await dashboardCmd()).dashboardCommand(a)),
    )
    .command(
      'jobmaster',
      false,
      (y) => y.option('job-dir', { type: 'string' }).option('in-cluster', { type: 'boolean' }).conflicts('job-dir', 'in-cluster'),
      async (a) => set(await (await internal()).jobMasterCommand(a['job-dir'], a['in-cluster'] ?? false)),
    )
    .command('worker', false, () => {}, async () => set(await (await internal()).workerCommand()))
    .demandCommand(1, 'give a command: twister2 submit <job>, or twister2 --help')
    .strict()
    .recommendCommands()
    .help()
    .version()
    .fail((msg, err) => {
      // yargs' own validation (a flag without its value, say) arrives as a YError: a usage mistake too.
      if (err && err.name !== 'YError') throw err;
      if (err) msg = err.message;
      throw new UsageError(`${msg}\nRun \`twister2 --help\` for the commands and options.`);
    });
  await cli.parseAsync();
  return code;
}
