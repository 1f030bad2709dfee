import { inWorkerCall, type InWorkerCall } from './in-worker-argv.js';

type InWorkerCommands = typeof import('./commands/in-worker.js');

/**
 * The `twister2` command. The in-worker commands take a short path that loads only what they need;
 * everything else goes through the full CLI (yargs).
 */
export function start(argv: string[]): void {
  const call = inWorkerCall(argv);
  if (!call) {
    void import('./main.js').then((m) => m.main(argv));
    return;
  }
  void Promise.all([import('./commands/in-worker.js'), import('./output.js'), import('./report-error.js')]).then(([w, out, { report }]) => {
    out.toleratePipeErrors();
    run(w, call).then(
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
