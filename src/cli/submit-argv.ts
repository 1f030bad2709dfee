import { CLUSTER_KINDS } from '../spec/cluster-kinds.js';

/** `twister2 submit`'s arguments, as the full CLI (yargs) and the short path below give them. */
export interface SubmitArgs {
  job: string;
  cluster?: (typeof CLUSTER_KINDS)[number] | undefined;
  workers?: string | undefined;
  detach: boolean;
  dashboard?: string | undefined;
  json: boolean;
}

const VALUED = new Set(['--cluster', '--workers', '--dashboard']);
const SWITCHES = new Set(['--detach', '--json']);

/**
 * `twister2 submit` in its plain forms, read by hand: yargs costs a submitting process more CPU than
 * reading, checking and packing the job (it also renders the whole help text on every command), and
 * 16 jobs submitted at once pay it 16 times. Only the plain forms are taken: each option at most once,
 * `--x v` or `--x=v`, a known cluster; anything else (help, an unknown or repeated option, a missing
 * value) goes to the full CLI, which explains mistakes.
 */
export function plainSubmitCall(argv: readonly string[]): SubmitArgs | undefined {
  const [cmd, ...rest] = argv;
  if (cmd !== 'submit') return undefined;
  const seen = new Map<string, string | true>();
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('-')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const [name, inline] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (seen.has(name)) return undefined;
    if (SWITCHES.has(name) && inline === undefined) seen.set(name, true);
    else if (VALUED.has(name)) {
      const value = inline ?? rest[++i];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
      seen.set(name, value);
    } else return undefined;
  }
  const cluster = seen.get('--cluster') as string | undefined;
  if (positional.length !== 1 || (cluster !== undefined && !(CLUSTER_KINDS as readonly string[]).includes(cluster))) return undefined;
  return {
    job: positional[0]!,
    cluster: cluster as SubmitArgs['cluster'],
    workers: seen.get('--workers') as string | undefined,
    detach: seen.has('--detach'),
    dashboard: seen.get('--dashboard') as string | undefined,
    json: seen.has('--json'),
  };
}
