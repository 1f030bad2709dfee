import { describe, expect, it } from 'vitest';
import { parseHostfile, renderHostfile, totalSlots } from '../../../../src/launchers/mpi/hostfile.js';
import { RankLines } from '../../../../src/launchers/mpi/tagged-output.js';

describe('hostfile', () => {
  it('renders one `host slots=N` line per host', () => {
    expect(renderHostfile([{ host: '10.0.0.11', slots: 2 }, { host: 'node2', slots: 8 }])).toMatchInlineSnapshot(`
      "10.0.0.11 slots=2
      node2 slots=8
      "
    `);
  });

  it('reads a user hostfile: comments, user@, max_slots, lines without slots', () => {
    const hosts = parseHostfile('# cluster\nnode1 slots=4 max_slots=8\nroot@node2 slots=2 # two\n\nnode3\n', 'hf');
    expect(hosts).toEqual([
      { host: 'node1', slots: 4 },
      { host: 'node2', slots: 2 },
      { host: 'node3', slots: undefined },
    ]);
    expect(totalSlots(hosts)).toBeUndefined();
    expect(totalSlots(hosts.slice(0, 2))).toBe(6);
  });

  it.each([
    ['node1 slots=0\n', /hf line 1: node1 has slots=0/],
    ['node1 cores=4\n', /hf line 1: cannot read "cores=4"/],
    ['# nothing\n', /hf names no hosts/],
  ])('refuses %j', (text, message) => {
    expect(() => parseHostfile(text, 'hf')).toThrow(message);
  });
});

describe('--tag-output lines', () => {
  it('splits rank and text', () => {
    expect(new RankLines().push('[1,3]<stdout>:T2TEST {"id":3}')).toEqual([{ rank: 3, text: 'T2TEST {"id":3}' }]);
    expect(new RankLines().push('[12,0]<stderr>:')).toEqual([{ rank: 0, text: '' }]);
    expect(new RankLines().push('mpirun noticed that process rank 0 ...')).toEqual([{ text: 'mpirun noticed that process rank 0 ...' }]);
  });
});
