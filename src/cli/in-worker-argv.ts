/**
 * The commands a command worker's program runs, often (`twister2 barrier`, `workers`, `ports publish`,
 * `message send`, `message recv`),
 * read by hand so that they start without yargs and the spec schema, which cost several times the rest
 * of such a command. Only the plain forms are taken; anything else (help, an unknown option, a job ID)
 * goes to the full CLI, which explains mistakes.
 */
export type InWorkerCall =
  | { cmd: 'barrier'; name: string; timeout?: string }
  | { cmd: 'workers'; json: boolean; wait: boolean }
  | { cmd: 'ports'; ports: string[] }
  | { cmd: 'message-send'; json: string }
  | { cmd: 'message-recv'; timeout?: string };

export function inWorkerCall(argv: readonly string[]): InWorkerCall | undefined {
  const [cmd, ...rest] = argv;
  if (cmd === 'barrier') {
    const a = withTimeout(rest);
    if (!a || a.positional.length !== 1) return undefined;
    return { cmd, name: a.positional[0]!, ...(a.timeout === undefined ? {} : { timeout: a.timeout }) };
  }
  if (cmd === 'message' && rest[0] === 'send') {
    // The JSON may start with "-" (a negative number) and `-` alone reads stdin; "--help" is no JSON.
    return rest.length === 2 && !rest[1]!.startsWith('--') ? { cmd: 'message-send', json: rest[1]! } : undefined;
  }
  if (cmd === 'message' && rest[0] === 'recv') {
    const a = withTimeout(rest.slice(1));
    if (!a || a.positional.length !== 0) return undefined;
    return { cmd: 'message-recv', ...(a.timeout === undefined ? {} : { timeout: a.timeout }) };
  }
  if (cmd === 'workers') {
    if (!rest.every((a) => a === '--json' || a === '--wait') || new Set(rest).size !== rest.length) return undefined;
    return { cmd, json: rest.includes('--json'), wait: rest.includes('--wait') };
  }
  if (cmd === 'ports' && rest[0] === 'publish') {
    const ports = rest.slice(1);
    if (ports.length === 0 || ports.some((p) => p.startsWith('-'))) return undefined;
    return { cmd, ports };
  }
  return undefined;
}

/** Positional arguments and at most one `--timeout X` / `--timeout=X`; undefined for any other option. */
function withTimeout(args: readonly string[]): { positional: string[]; timeout?: string } | undefined {
  let timeout: string | undefined;
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--timeout' && i + 1 < args.length && !args[i + 1]!.startsWith('-')) timeout = args[++i];
    else if (a.startsWith('--timeout=') && a.length > '--timeout='.length) timeout = a.slice('--timeout='.length);
    else if (a.startsWith('-')) return undefined;
    else positional.push(a);
  }
  if (timeout !== undefined && args.filter((a) => a.startsWith('--timeout')).length > 1) return undefined;
  return { positional, ...(timeout === undefined ? {} : { timeout }) };
}
