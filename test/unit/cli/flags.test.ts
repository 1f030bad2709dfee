import { describe, expect, it } from 'vitest';
import { workersFlag, wholeNumberFlag } from '../../../src/cli/flags.js';

describe('numeric flags', () => {
  it.each([
    ['0x10', /--workers "0x10" is not a whole number in decimal digits/],
    ['1e9', /--workers "1e9" is not a whole number/],
    ['abc', /--workers "abc" is not a whole number/],
    ['', /--workers "" is not a whole number/],
    ['1.5', /--workers "1.5" is not a whole number/],
    ['-3', /--workers "-3" is not a whole number/],
    ['0', /--workers 0 is out of range; give a whole number from 1 to 100000, e.g. `twister2 submit --workers 4 <job>`/],
    ['100001', /--workers 100001 is out of range/],
    [['2', '3'], /--workers was given 2 times \(2, 3\); give it once/],
  ])('refuses %j naming the flag, what it got and what it takes', (raw, message) => {
    expect(() => workersFlag('--workers', raw, 'twister2 submit --workers 4 <job>')).toThrow(message);
    try {
      workersFlag('--workers', raw, 'x');
    } catch (err) {
      expect(err).toMatchObject({ code: 'T2_USAGE', exitCode: 2 });
    }
  });

  it('reads plain decimal numbers, within the range', () => {
    expect(workersFlag('--workers', '16', 'x')).toBe(16);
    expect(workersFlag('--workers', ' 007 ', 'x')).toBe(7);
    expect(wholeNumberFlag('--port', '0', { min: 0, max: 65535, example: 'x' })).toBe(0);
    expect(() => wholeNumberFlag('--port', '65536', { min: 0, max: 65535, example: 'x' })).toThrow(/--port 65536 is out of range/);
  });
});
