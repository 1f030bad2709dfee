import { expect } from 'vitest';
import { SpecError } from '../../src/errors.js';
import { checkCapabilities } from '../../src/launchers/registry.js';
import { parseSpec } from '../../src/spec/validate.js';

/** The spec's problems (schema, then the cluster's capabilities) as one message; '' when there are none. */
export function specProblems(raw: Record<string, unknown>): string {
  try {
    checkCapabilities(parseSpec(raw));
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).message;
  }
  return '';
}
