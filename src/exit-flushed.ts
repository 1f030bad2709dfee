/** Resolves once everything written to the stream so far has been handed to the OS (or its reader is gone). */
export function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || stream.writableLength === 0) return Promise.resolve();
  // Writes complete in order: the callback of an empty write comes after every write before it.
  return new Promise((resolve) => {
    stream.write('', () => resolve());
    stream.once('close', () => resolve());
    stream.once('error', () => resolve()); // EPIPE: the reader is gone, nothing more to wait for
  });
}

/**
 * Exits once stdout and stderr are flushed. On a pipe Node writes asynchronously, and process.exit()
 * drops whatever is still queued: the last lines of a job's output, or its final status.
 * `atMostMs` bounds the wait where exiting matters more than a reader that stopped reading.
 */
export function exitWhenFlushed(code: number, atMostMs?: number): void {
  if (atMostMs !== undefined) setTimeout(() => process.exit(code), atMostMs);
  void Promise.all([flushed(process.stdout), flushed(process.stderr)]).then(() => process.exit(code));
}
