import { inWorkerCall, type InWorkerCall } from './in-worker-argv.js';
import { plainSubmitCall } from './submit-argv.js';

type InWorkerCommands = typeof import('./commands/in-worker.js');

/**
 * The `twister2` command. The in-worker commands and a plain `submit` take a short path that loads only
 * what they need; everything else goes through the full CLI (yargs).
 */
export function start(argv: string[]): void {
  const call = inWorkerCall(argv);
  if (call) {
    shortPath(import('./commands/in-worker.js'), (w) => run(w, call));
    return;
  }
  const submitCall = plainSubmitCall(argv);
  if (submitCall) {
    shortPath(import('./commands/submit.js'), (s) => s.submitCommand(submitCall));
    return;
  }
  void import('./main.js').then((m) => m.main(argv));
}

/** Runs a command outside yargs, with the full CLI's output handling, errors and exit codes. */
function shortPath<M>(command: Promise<M>, run: (m: M) => Promise<number>): void {
  void Promise.all([command, import('./output.js'), import('./report-error.js')]).then(([m, out, { report }]) => {
    out.toleratePipeErrors();
    run(m).then(
      (code) => out.exitWhenFlushed(code),
      (err: unknown) => out.exitWhenFlushed(report(err)),
    );
  });
}

function run(w: InWorkerCommands, call: InWorkerCall): Promise<number> {
  switch (call.cmd) {
    case 'barrier':
      return w.barrierCommand({ name: call.name, timeout: call.timeout });
    case 'workers':
      return w.workersCommand({ json: call.json, wait: call.wait });
    case 'ports':
      return w.publishPortsCommand({ ports: call.ports });
    case 'message-send':
      return w.messageSendCommand({ json: call.json });
    case 'message-recv':
      return w.messageRecvCommand({ timeout: call.timeout });
  }
}
