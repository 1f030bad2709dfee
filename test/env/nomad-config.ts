import path from 'node:path';

/** What test/env/nomad-agent.ts writes into an agent's config file. */
export interface NomadConfigInput {
  /** The agent's name, which is its client node's name (`${node.unique.name}`). */
  name: string;
  /** The agent's temp directory: data_dir is `dir/data`. */
  dir: string;
  ports: { http: number; rpc: number; serf: number };
  /** Absent: the dev-mode agent (server and client); present: a client-only agent joining these servers' RPC addresses. */
  servers?: string[];
  memoryMB?: number | undefined;
  cpuMHz?: number | undefined;
  meta?: Record<string, string> | undefined;
  /** Host volumes the client declares (client { host_volume "<name>" { path } }): name → an existing directory. */
  hostVolumes?: Record<string, string> | undefined;
}

function hclString(s: string): string {
  return JSON.stringify(s);
}

/**
 * The agent's HCL: everything on 127.0.0.1 and the given ports, raw_exec only, no fingerprinter that leaves the
 * machine, no Consul or Vault. The dev-mode agent is its own one-node server; a client agent has no server and
 * registers with `servers`.
 */
export function agentConfig(c: NomadConfigInput): string {
  const meta = Object.entries(c.meta ?? {})
    .map(([k, v]) => `    ${hclString(k)} = ${hclString(v)}\n`)
    .join('');
  const server = c.servers
    ? `server {
  enabled = false
}
`
    : `server {
  enabled          = true
  bootstrap_expect = 1
}
`;
  const hostVolumes = Object.entries(c.hostVolumes ?? {})
    .map(([name, dir]) => `  host_volume ${hclString(name)} {
    path      = ${hclString(dir)}
    read_only = false
  }
`)
    .join('');
  const servers = c.servers ? `  servers           = [${c.servers.map(hclString).join(', ')}]\n` : '';
  return `# Written by test/env/nomad-agent.ts; ${c.servers ? 'a client-only agent' : 'merged over `nomad agent -dev`'}.
name = ${hclString(c.name)}
data_dir = ${hclString(path.join(c.dir, 'data'))}
log_level = "INFO"
bind_addr = "127.0.0.1"
disable_update_check = true
disable_anonymous_signature = true

ports {
  http = ${c.ports.http}
  rpc  = ${c.ports.rpc}
  serf = ${c.ports.serf}
}
addresses {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
advertise {
  http = "127.0.0.1:${c.ports.http}"
  rpc  = "127.0.0.1:${c.ports.rpc}"
  serf = "127.0.0.1:${c.ports.serf}"
}

${server}
client {
  enabled           = true
  network_interface = "lo"
${servers}${c.memoryMB !== undefined ? `  memory_total_mb   = ${Math.floor(c.memoryMB)}\n` : ''}${c.cpuMHz !== undefined ? `  cpu_total_compute = ${Math.floor(c.cpuMHz)}\n` : ''}  options = {
    # Cloud fingerprinters query 169.254.169.254: never from here. Consul and Vault are not run.
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean,consul,vault"
    "driver.allowlist"     = "raw_exec"
  }
  meta {
${meta}  }
${hostVolumes}}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

consul {
  auto_advertise   = false
  server_auto_join = false
  client_auto_join = false
}
`;
}
