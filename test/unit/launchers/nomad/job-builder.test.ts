import { describe, expect, it } from 'vitest';
import { SpecError } from '../../../../src/errors.js';
import { allocationIndex, nomadJob } from '../../../../src/launchers/nomad/job-builder.js';
import { hostVolumePaths } from '../../../../src/launchers/nomad/host-volumes.js';
import type { NomadNode } from '../../../../src/launchers/nomad/nomad-api.js';
import { nomadSection } from '../../../../src/launchers/nomad/nomad-launcher.js';
import { describePlacementFailures, deviceShortage } from '../../../../src/launchers/nomad/placement-failures.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const base = { name: 'j', cluster: 'nomad', workers: 3, worker: { command: 'true' } };

function job(raw: Record<string, unknown> = {}) {
  const spec = parseSpec({ ...base, ...raw });
  return nomadJob({ jobId: 'j-1', spec, nomad: nomadSection(spec), env: { TWISTER2_JOB_ID: 'j-1' }, workerCommand: ['/usr/bin/node', '/t2/worker/main.js'] });
}

describe('Nomad job', () => {
  it('is one batch task group of N allocations; restarts stay in the allocation; the token comes from a variable', () => {
    expect(job({ restart: { maxRestarts: 2 }, resources: { cpu: 0.5, memory: '256Mi' } })).toMatchInlineSnapshot(`
      {
        "Affinities": [],
        "Constraints": [],
        "Datacenters": [
          "*",
        ],
        "ID": "j-1",
        "Meta": {
          "twister2.job": "j-1",
          "twister2.name": "j",
        },
        "Name": "j-1",
        "Spreads": [],
        "TaskGroups": [
          {
            "Count": 3,
            "Name": "workers",
            "ReschedulePolicy": {
              "Attempts": 0,
              "Unlimited": false,
            },
            "RestartPolicy": {
              "Attempts": 2,
              "Delay": 1000000000,
              "Interval": 86400000000000,
              "Mode": "fail",
            },
            "Tasks": [
              {
                "Config": {
                  "args": [
                    "/t2/worker/main.js",
                  ],
                  "command": "/usr/bin/node",
                },
                "Driver": "raw_exec",
                "Env": {
                  "TWISTER2_JOB_ID": "j-1",
                },
                "Identity": {
                  "Env": true,
                },
                "KillSignal": "SIGTERM",
                "KillTimeout": 5000000000,
                "LogConfig": {
                  "MaxFileSizeMB": 10,
                  "MaxFiles": 3,
                },
                "Name": "worker",
                "Resources": {
                  "CPU": 500,
                  "MemoryMB": 256,
                },
                "Templates": [
                  {
                    "ChangeMode": "noop",
                    "DestPath": "secrets/twister2.env",
                    "EmbeddedTmpl": "TWISTER2_JOB_TOKEN={{ with nomadVar "nomad/jobs/j-1" }}{{ .token }}{{ end }}
      ",
                    "Envvars": true,
                  },
                ],
              },
            ],
          },
        ],
        "Type": "batch",
      }
    `);
  });

  it('maps placement, GPUs, docker and the cluster scope', () => {
    const j = job({
      resources: { gpus: 2, disk: '1Gi' },
      // A docker task downloads the package: it cannot read this machine's disk.
      uploader: { kind: 'http', http: { url: 'http://10.0.0.1:8080' } },
      nomad: {
        type: 'service',
        driver: 'docker',
        image: 'twister2/worker:0.1.0',
        namespace: 'analytics',
        region: 'eu',
        datacenters: ['dc1', 'dc2'],
        nodePool: 'gpu',
        constraints: [{ attribute: '${attr.kernel.name}', value: 'linux' }, { operator: 'distinct_hosts', value: 'true' }],
        affinities: [{ attribute: '${node.class}', value: 'fast', weight: 70 }],
        spread: [{ attribute: '${node.datacenter}', targets: [{ value: 'dc1', percent: 50 }] }],
        taskConfig: { volumes: ['/data:/data'] },
      },
    }) as { TaskGroups: { Tasks: { Config: unknown; Resources: unknown }[]; EphemeralDisk: unknown }[] } & Record<string, unknown>;
    expect(j).toMatchObject({ Type: 'service', Namespace: 'analytics', Region: 'eu', Datacenters: ['dc1', 'dc2'], NodePool: 'gpu' });
    expect(j.Constraints).toEqual([
      { LTarget: '${attr.kernel.name}', Operand: '=', RTarget: 'linux' },
      { LTarget: '', Operand: 'distinct_hosts', RTarget: 'true' },
    ]);
    expect(j.Affinities).toEqual([{ LTarget: '${node.class}', Operand: '=', RTarget: 'fast', Weight: 70 }]);
    expect(j.Spreads).toEqual([{ Attribute: '${node.datacenter}', Weight: 50, SpreadTarget: [{ Value: 'dc1', Percent: 50 }] }]);
    const group = j.TaskGroups[0]!;
    expect(group.EphemeralDisk).toEqual({ SizeMB: 1024 });
    expect(group.Tasks[0]!.Config).toEqual({ image: 'twister2/worker:0.1.0', network_mode: 'host', volumes: ['/data:/data'], command: '/usr/bin/node', args: ['/t2/worker/main.js'] });
    expect(group.Tasks[0]!.Resources).toEqual({ CPU: 1000, MemoryMB: 512, Devices: [{ Name: 'nvidia/gpu', Count: 2 }] });
  });

  it('refuses a docker driver without an image, and an image without docker', () => {
    expect(() => parseSpec({ ...base, nomad: { driver: 'docker' } })).toThrow(SpecError);
    expect(() => parseSpec({ ...base, nomad: { driver: 'docker' } })).toThrow(/nomad.image: driver "docker" needs nomad.image/);
    expect(() => parseSpec({ ...base, nomad: { image: 'x' } })).toThrow(/nomad.image: nomad.image is for driver "docker", not "raw_exec"/);
  });

  it('storage: a host volume block placing the workers, its path per node for the worker, a post-stop clean-up task copying the log with logs: true', () => {
    const spec = parseSpec({ ...base, storage: { memory: { size: '1Mi' }, scratch: {}, persistent: { hostVolume: 'results', logs: true } } });
    const paths = { 'node-a': '/srv/results', 'node-b': '/data/results' };
    const j = nomadJob({
      jobId: 'j-1',
      spec,
      nomad: nomadSection(spec),
      env: { TWISTER2_JOB_ID: 'j-1' },
      workerCommand: ['/usr/bin/node', '/t2/worker/main.js'],
      storage: { cleanupCommand: ['/usr/bin/node', '/t2/worker/storage-cleanup-main.js'], hostVolumePaths: paths },
    }) as { TaskGroups: { Volumes?: unknown; Tasks: { Name: string; Env: Record<string, string>; Lifecycle?: unknown; Config: unknown; VolumeMounts?: unknown }[] }[] };
    const group = j.TaskGroups[0]!;
    expect(group.Volumes).toEqual({ persistent: { Name: 'persistent', Type: 'host', Source: 'results', ReadOnly: false } });
    const [worker, cleanup] = group.Tasks;
    // raw_exec cannot mount a volume: no volume_mount, the worker is told the path on its node instead.
    expect(worker!.VolumeMounts).toBeUndefined();
    expect(worker!.Env).toEqual({ TWISTER2_JOB_ID: 'j-1', TWISTER2_HOST_VOLUME_PATHS: JSON.stringify(paths), TWISTER2_NODE_ID: '${node.unique.id}' });
    expect(cleanup).toMatchObject({
      Name: 'storage-cleanup',
      Driver: 'raw_exec',
      Lifecycle: { Hook: 'poststop', Sidecar: false },
      Config: { command: '/usr/bin/node', args: ['/t2/worker/storage-cleanup-main.js'] },
      Env: { ...worker!.Env, TWISTER2_COPY_LOGS: 'worker' },
    });
  });

  it('storage without a host volume: no volume block, the clean-up task copies no log; no storage: neither', () => {
    const spec = parseSpec({ ...base, storage: { memory: { size: '1Mi' } } });
    const input = { jobId: 'j-1', nomad: nomadSection(spec), env: { TWISTER2_JOB_ID: 'j-1' }, workerCommand: ['/usr/bin/node', '/t2/worker/main.js'] };
    const j = nomadJob({ ...input, spec, storage: { cleanupCommand: ['/usr/bin/node', '/t2/c.js'] } }) as { TaskGroups: { Volumes?: unknown; Tasks: { Name: string; Env: Record<string, string> }[] }[] };
    expect(j.TaskGroups[0]!.Volumes).toBeUndefined();
    expect(j.TaskGroups[0]!.Tasks.map((t) => t.Name)).toEqual(['worker', 'storage-cleanup']);
    expect(j.TaskGroups[0]!.Tasks[1]!.Env).toEqual({ TWISTER2_JOB_ID: 'j-1' });
    expect((job() as { TaskGroups: { Tasks: unknown[] }[] }).TaskGroups[0]!.Tasks).toHaveLength(1);
  });

  it('storage.persistent.hostVolume: its path on each node declaring it writable; none is an error naming the volume and the fix', () => {
    const node = (ID: string, HostVolumes: NomadNode['HostVolumes'], Status = 'ready'): NomadNode => ({ ID, Name: `name-${ID}`, Status, HostVolumes });
    const nodes = [node('a', { results: { Path: '/srv/r' } }), node('b', null), node('c', { results: { Path: '/ro', ReadOnly: true } }), node('d', { results: { Path: '/x' } }, 'down')];
    expect(hostVolumePaths(nodes, 'results')).toEqual({ a: '/srv/r' });
    expect(() => hostVolumePaths(nodes.slice(1), 'results')).toThrow(
      /^storage\.persistent\.hostVolume "results" cannot hold the job's files: it is read_only on name-c; declare it writable in the client config of the nodes to run the job \(client \{ host_volume "results" \{ path = "\/srv\/results" \} \}\), or name another host volume$/,
    );
    expect(() => hostVolumePaths(nodes, 'other')).toThrow(expect.objectContaining({ name: 'LauncherError', message: expect.stringMatching(/"other" cannot hold the job's files: no client node of the 4 the cluster lists declares it/) }));
  });

  it('reads the worker ID from the allocation name', () => {
    expect(allocationIndex('j-1.workers[12]')).toBe(12);
    expect(allocationIndex('j-1.workers')).toBeUndefined();
  });
});

describe('placement failures', () => {
  it("says what Nomad's metrics say", () => {
    expect(
      describePlacementFailures({ workers: { NodesEvaluated: 1, NodesExhausted: 1, DimensionExhausted: { memory: 1 }, ConstraintFiltered: { '${attr.kernel.name} = windows': 2 } } }, { workers: 2 }),
    ).toBe('workers: 2 allocations not placed; 1 node evaluated; constraint ${attr.kernel.name} = windows filtered 2 nodes; resources exhausted on 1 node; dimension "memory" exhausted on 1 node');
    expect(describePlacementFailures({})).toBeUndefined();
    expect(describePlacementFailures(null)).toBeUndefined();
  });

  it('says when the GPUs (a device request) are what could not be placed, with the device, the count and the fix', () => {
    const gpu = { name: 'nvidia/gpu', count: 2 };
    expect(deviceShortage({ workers: { NodesEvaluated: 2, ConstraintFiltered: { 'missing devices': 2 } } }, gpu)).toBe(
      'no node has 2 free "nvidia/gpu" devices for each worker, which resources.gpus: 2 asks for; set resources.gpus: 0, or nomad.gpuDevice to the device your Nomad clients fingerprint (`nomad node status -verbose` lists them, e.g. nvidia/gpu)',
    );
    expect(deviceShortage({ workers: { DimensionExhausted: { 'devices: no devices match request': 1 } } }, gpu)).toMatch(/^no node has 2 free "nvidia\/gpu" devices/);
    // Not about devices, or no device asked for: nothing to add.
    expect(deviceShortage({ workers: { DimensionExhausted: { memory: 1 } } }, gpu)).toBeUndefined();
    expect(deviceShortage({ workers: { ConstraintFiltered: { 'missing devices': 2 } } }, undefined)).toBeUndefined();
  });
});
