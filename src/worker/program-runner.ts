import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Twister2Error } from '../errors.js';
import type { WorkerProgram } from '../spec/schema.js';
import type { WorkerContext, WorkerFunction } from './context.js';

export class WorkerProgramError extends Twister2Error {
  override readonly code = 'T2_WORKER_PROGRAM';
}

/** Imports a JS/TS worker module and runs its default export with the context. */
export async function runModule(program: WorkerProgram, packageDir: string, ctx: WorkerContext): Promise<void> {
  const run = await importDefaultFunction<WorkerFunction>(packageDir, program.module!, 'worker module', 'async (ctx) => { ... }');
  await run(ctx);
}

/**
 * The default export function of a JS/TS module of the job package (a worker's, the driver's); `what` and
 * `example` name it in errors. TypeScript is compiled on the fly by tsx, loaded only when needed.
 */
export async function importDefaultFunction<F>(packageDir: string, module: string, what: string, example: string): Promise<F> {
  const file = path.resolve(packageDir, module);
  if (!file.startsWith(packageDir + path.sep)) throw new WorkerProgramError(`${what} "${module}" is outside the job package`);
  let mod: { default?: unknown };
  try {
    mod = /\.[mc]?ts$/.test(file)
      ? ((await (await import('tsx/esm/api')).tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown })
      : ((await import(pathToFileURL(file).href)) as { default?: unknown });
  } catch (err) {
    throw new WorkerProgramError(`cannot load ${what} ${module}: ${(err as Error).message}`, { cause: err });
  }
  // A .ts file outside an ESM package compiles to CommonJS: its default export arrives one level down.
  const inner = (mod.default as { default?: unknown } | undefined)?.default;
  if (typeof mod.default !== 'function' && typeof inner === 'function') mod = { default: inner };
  if (typeof mod.default !== 'function') throw new WorkerProgramError(`${what} ${module} has no default export function; write \`export default ${example}\``);
  return mod.default as F;
}

/**
 * Runs a command worker. It stays in the runtime's process group, so a launcher that stops the group
 * stops it too; when the runtime must quit first, its ProgramTree ends the command and all it started.
 */
export function runCommand(program: WorkerProgram, packageDir: string, env: NodeJS.ProcessEnv): { done: Promise<void> } {
  const cmd = program.command!;
  const [file, args] = commandArgv(cmd, program.args);
  const child: ChildProcess = spawn(file, args, { cwd: packageDir, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new WorkerProgramError(`cannot start worker command "${describeCommand(cmd)}": ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new WorkerProgramError(`worker command "${describeCommand(cmd)}" ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`));
    });
  });
  return { done };
}

/** What runs a spec's command line (worker.command, worker.health.command): a string through /bin/sh -c, `args` quoted after it; an array as it is, `args` appended. */
export function commandArgv(cmd: string | string[], args: string[] = []): [file: string, argv: string[]] {
  if (typeof cmd === 'string') return ['/bin/sh', ['-c', [cmd, ...args.map(shellQuote)].join(' ')]];
  const [file, ...rest] = cmd;
  return [file!, [...rest, ...args]];
}

export function describeCommand(cmd: string | string[]): string {
  return typeof cmd === 'string' ? cmd : cmd.join(' ');
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
