import { StringDecoder } from 'node:string_decoder';

/** A line longer than this (characters) is handed on in pieces of this size rather than held whole. */
export const MAX_LINE_CHARS = 1024 * 1024;

/**
 * Cuts a byte stream of worker output into lines. A chunk may end inside a line or a multi-byte character:
 * both are kept for the next chunk. What it holds is bounded: a line without an end is cut at MAX_LINE_CHARS.
 */
export class LineSplitter {
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');

  /** The lines this chunk completes. */
  push(chunk: Buffer | string): string[] {
    const lines = (this.partial + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk))).split('\n');
    let rest = lines.pop() ?? '';
    while (rest.length > MAX_LINE_CHARS) {
      lines.push(rest.slice(0, MAX_LINE_CHARS));
      rest = rest.slice(MAX_LINE_CHARS);
    }
    this.partial = rest;
    return lines;
  }

  /** A last line without a newline, if there is one. */
  end(): string | undefined {
    const rest = this.partial + this.decoder.end();
    this.partial = '';
    return rest || undefined;
  }
}
