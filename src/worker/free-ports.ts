import net from 'node:net';

/**
 * One free TCP port per name, on every interface of this host, for worker.ports. All are held open until
 * every one is picked, so two names never get the same port; they are closed before the program starts,
 * which then listens on them (another process of the host could take one in between: the same race any
 * "find a free port" has, and the program's listen error names it).
 */
export async function pickFreePorts(names: readonly string[]): Promise<Record<string, number>> {
  const servers: net.Server[] = [];
  try {
    const ports: Record<string, number> = {};
    for (const name of names) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, () => resolve());
      });
      ports[name] = (server.address() as net.AddressInfo).port;
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}
