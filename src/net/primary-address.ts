import os from 'node:os';

/** This machine's first non-loopback IPv4 address: where other hosts of a cluster reach it. */
export function primaryAddress(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}
