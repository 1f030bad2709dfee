/** Names of hosts that are this machine wherever the spec is read (the worker runtime parses it too). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
