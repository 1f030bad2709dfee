/**
 * The commands a command worker's program runs, often (`twister2 barrier`, `workers`, `ports publish`),
 * read by hand so that they start without yargs and the spec schema, which cost several times the rest
 * of such a command. Only the plain forms are taken; anything else (help, an unknown option, a job ID)
 * goes to the full CLI, which explains mistakes.
 */
export type InWorkerCall =
  | { cmd: 'barrier'; name: string; timeout?: string }
  | { cmd: 'workers'; json: boolean; wait: boolean }
  | { cmd: 'ports'; ports: string[] };

export function inWorkerCall(argv: readonly string[]): InWorkerCall | undefined {
  const [cmd, ...rest] = argv;
  if (cmd === 'barrier') {
    let timeout: string | undefined;
    const names: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i]!;
      if (a === '--timeout' && i + 1 < rest.length && !rest[i + 1]!.startsWith('-')) timeout = rest[++i];
      else if (a.startsWith('--timeout=') && a.length > '--timeout='.length) timeout = a.slice('--timeout='.length);
      else if (a.startsWith('-')) return undefined;
      else names.push(a);
    }
    if (names.length !== 1 || (timeout !== undefined && rest.filter((a) => a.startsWith('--timeout')).length > 1)) return undefined;
    return { cmd, name: names[0]!, ...(timeout === undefined ? {} : { timeout }) };
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
