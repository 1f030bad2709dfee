import { inWorkerCall } from './in-worker-argv.js';

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
    const run =
      call.cmd === 'barrier'
        ? w.barrierCommand({ name: call.name, timeout: call.timeout })
        : call.cmd === 'workers'
          ? w.workersCommand({ json: call.json, wait: call.wait })
          : call.cmd === 'ports'
            ? w.publishPortsCommand({ ports: call.ports })
            : call.cmd === 'message-send'
              ? w.messageSendCommand({ json: call.json })
              : w.messageRecvCommand({ timeout: call.timeout });
    run.then(
      (code) => out.exitWhenFlushed(code),
      (err: unknown) => out.exitWhenFlushed(report(err)),
    );
  });
}
