import { describe, expect, it } from 'vitest';
import type { V1StatefulSet } from '@kubernetes/client-node';
import type { LaunchContext } from '../../../../src/launchers/launcher.js';
import { workerEnvironment, workerTokenOf } from '../../../../src/job/worker-environment.js';
import {
  jobMasterRole,
  jobMasterRoleBinding,
  jobMasterServiceUrl,
  jobMasterStatefulSet,
  jobObjects,
  jobSecret,
  k8sJob,
  nodePortService,
  openmpiScript,
  persistentVolumeClaim,
  rootConfigMap,
  rootOwnerReference,
  workerHeadlessService,
  workerPod,
  workerResources,
  workerStatefulSet,
  type K8sJob,
  workerAccountObjects,
} from '../../../../src/launchers/k8s/objects/index.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const JOB_ID = 'train-20261122073606-e203';
const TOKEN = 'tok-0123456789abcdef0123456789abcdef';
const base = { name: 'train', cluster: 'kubernetes', workers: 6, worker: { module: 'main.mjs' } };
const OWNER = { apiVersion: 'v1', kind: 'ConfigMap', name: JOB_ID, uid: '00000000-1111-2222-3333-444444444444', blockOwnerDeletion: true, controller: false };

function jobOf(raw: Record<string, unknown> = {}): K8sJob {
  return k8sJob(JOB_ID, parseSpec({ ...base, ...raw }), OWNER);
}

function envOf(job: K8sJob): Record<string, string> {
  const ctx: LaunchContext = {
    jobId: JOB_ID,
    spec: job.spec,
    jobDir: '/home/u/.twister2/jobs/x',
    packageRef: { kind: 'http', url: 'http://pkg:8080/p/x.tar.gz', token: 'read-token-secret', sha256: 'a'.repeat(64), size: 10 },
    jobMasterUrl: jobMasterServiceUrl(job),
    token: TOKEN,
  };
  return workerEnvironment(ctx, { secret: { kind: 'cluster' } });
}

function sts(raw: Record<string, unknown> = {}): V1StatefulSet {
  const job = jobOf(raw);
  return workerStatefulSet(job, { env: envOf(job) });
}

const podSpec = (raw: Record<string, unknown> = {}) => sts(raw).spec!.template.spec!;

describe('worker StatefulSet', () => {
  it('builds a representative job: 3 workers per pod, pinned GPUs, RAM volume, spread, node selector', () => {
    const s = sts({
      resources: { cpu: 2, memory: '4Gi', gpus: 1 },
      kubernetes: {
        namespace: 'ml',
        image: 'registry.example.com/t2/worker:1',
        imagePullSecrets: ['regcred'],
        workersPerPod: 3,
        cpuPinning: true,
        podPlacement: { nodeSelector: { pool: 'gpu' }, workers: 'spread' },
        volumes: { memory: { sizeLimit: '1Gi' } },
      },
    });
    // The containers differ only in their name and index: snapshot the first.
    const containers = s.spec!.template.spec!.containers;
    const withoutIndex = (c: (typeof containers)[number]) => ({ ...c, name: '', env: c.env!.filter((e) => e.name !== 'TWISTER2_CONTAINER_INDEX') });
    expect(containers.map((c) => c.name)).toEqual(['worker-0', 'worker-1', 'worker-2']);
    for (const c of containers) expect(withoutIndex(c)).toEqual(withoutIndex(containers[0]!));
    s.spec!.template.spec!.containers = containers.slice(0, 1);
    expect(s).toMatchInlineSnapshot(`
      {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
          "labels": {
            "app.kubernetes.io/managed-by": "twister2",
            "twister2.io/job": "train-20261122073606-e203",
            "twister2.io/role": "worker",
            "twister2.io/worker-group": "0",
          },
          "name": "train-20261122073606-e203-w0",
          "namespace": "ml",
          "ownerReferences": [
            {
              "apiVersion": "v1",
              "blockOwnerDeletion": true,
              "controller": false,
              "kind": "ConfigMap",
              "name": "train-20261122073606-e203",
              "uid": "00000000-1111-2222-3333-444444444444",
            },
          ],
        },
        "spec": {
          "podManagementPolicy": "Parallel",
          "replicas": 2,
          "revisionHistoryLimit": 1,
          "selector": {
            "matchLabels": {
              "app.kubernetes.io/managed-by": "twister2",
              "twister2.io/job": "train-20261122073606-e203",
              "twister2.io/role": "worker",
              "twister2.io/worker-group": "0",
            },
          },
          "serviceName": "train-20261122073606-e203-w0",
          "template": {
            "metadata": {
              "labels": {
                "app.kubernetes.io/managed-by": "twister2",
                "twister2.io/job": "train-20261122073606-e203",
                "twister2.io/role": "worker",
                "twister2.io/worker-group": "0",
              },
            },
            "spec": {
              "affinity": {
                "podAntiAffinity": {
                  "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                      "labelSelector": {
                        "matchLabels": {
                          "twister2.io/job": "train-20261122073606-e203",
                          "twister2.io/role": "worker",
                        },
                      },
                      "topologyKey": "kubernetes.io/hostname",
                    },
                  ],
                },
              },
              "automountServiceAccountToken": true,
              "containers": [
                {
                  "command": [
                    "node",
                    "/opt/twister2/dist/worker/main.js",
                  ],
                  "env": [
                    {
                      "name": "TWISTER2_JOB_ID",
                      "value": "train-20261122073606-e203",
                    },
                    {
                      "name": "TWISTER2_CLUSTER",
                      "value": "kubernetes",
                    },
                    {
                      "name": "TWISTER2_REGISTRATION_TIMEOUT_MS",
                      "value": "60000",
                    },
                    {
                      "name": "TWISTER2_JOB_MASTER_URL",
                      "value": "http://train-20261122073606-e203-jm.ml.svc:7575",
                    },
                    {
                      "name": "TWISTER2_WORK_DIR",
                      "value": "/twister2/shared",
                    },
                    {
                      "name": "TWISTER2_JOB_TOKEN",
                      "valueFrom": {
                        "secretKeyRef": {
                          "key": "worker-token",
                          "name": "train-20261122073606-e203-secret",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_PACKAGE_REF",
                      "valueFrom": {
                        "secretKeyRef": {
                          "key": "package-ref",
                          "name": "train-20261122073606-e203-secret",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_POD_NAME",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "metadata.name",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_NAMESPACE",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "metadata.namespace",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_POD_IP",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "status.podIP",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_NODE",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "spec.nodeName",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_K8S_ROOT",
                      "value": "train-20261122073606-e203",
                    },
                    {
                      "name": "TWISTER2_K8S_ACCOUNT_DIR",
                      "value": "/var/run/secrets/kubernetes.io/serviceaccount",
                    },
                    {
                      "name": "TWISTER2_CONTAINER_INDEX",
                      "value": "0",
                    },
                    {
                      "name": "TWISTER2_WORKERS_PER_POD",
                      "value": "3",
                    },
                    {
                      "name": "TWISTER2_WORKER_ID_OFFSET",
                      "value": "0",
                    },
                  ],
                  "image": "registry.example.com/t2/worker:1",
                  "imagePullPolicy": "IfNotPresent",
                  "name": "worker-0",
                  "resources": {
                    "limits": {
                      "cpu": "2",
                      "memory": "4Gi",
                      "nvidia.com/gpu": "1",
                    },
                    "requests": {
                      "cpu": "2",
                      "memory": "4Gi",
                      "nvidia.com/gpu": "1",
                    },
                  },
                  "volumeMounts": [
                    {
                      "mountPath": "/twister2/shared",
                      "name": "shared",
                    },
                  ],
                },
              ],
              "enableServiceLinks": false,
              "imagePullSecrets": [
                {
                  "name": "regcred",
                },
              ],
              "nodeSelector": {
                "pool": "gpu",
              },
              "restartPolicy": "Always",
              "serviceAccountName": "train-20261122073606-e203-worker",
              "shareProcessNamespace": true,
              "terminationGracePeriodSeconds": 15,
              "volumes": [
                {
                  "emptyDir": {
                    "medium": "Memory",
                    "sizeLimit": "1Gi",
                  },
                  "name": "shared",
                },
              ],
            },
          },
          "updateStrategy": {
            "type": "OnDelete",
          },
        },
      }
    `);
  });

  it('has one container per worker and a replica per pod', () => {
    expect(sts().spec!.replicas).toBe(6);
    expect(podSpec().containers.map((c) => c.name)).toEqual(['worker-0']);
    expect(podSpec().shareProcessNamespace).toBeUndefined();
    const three = sts({ kubernetes: { workersPerPod: 3 } });
    expect(three.spec!.replicas).toBe(2);
    expect(three.spec!.template.spec!.containers.map((c) => c.name)).toEqual(['worker-0', 'worker-1', 'worker-2']);
    expect(three.spec!.template.spec!.shareProcessNamespace).toBe(true);
    const idEnv = three.spec!.template.spec!.containers.map((c) => c.env!.filter((e) => /CONTAINER_INDEX|WORKERS_PER_POD|ID_OFFSET/.test(e.name)).map((e) => `${e.name}=${e.value}`));
    expect(idEnv[2]).toEqual(['TWISTER2_CONTAINER_INDEX=2', 'TWISTER2_WORKERS_PER_POD=3', 'TWISTER2_WORKER_ID_OFFSET=0']);
  });

  it('never writes a token or the package reference into the pod spec: workers read the worker token from the Secret', () => {
    const text = JSON.stringify(sts());
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(workerTokenOf(TOKEN));
    expect(text).not.toContain('read-token-secret');
    const env = podSpec().containers[0]!.env!;
    // The worker token's key, never the admin secret's ('token'), which only the job master's container reads.
    expect(env.find((e) => e.name === 'TWISTER2_JOB_TOKEN')).toEqual({ name: 'TWISTER2_JOB_TOKEN', valueFrom: { secretKeyRef: { name: `${JOB_ID}-secret`, key: 'worker-token' } } });
    expect(text).not.toMatch(/"key":"token"/);
    expect(env.find((e) => e.name === 'TWISTER2_PACKAGE_REF')?.valueFrom?.secretKeyRef?.key).toBe('package-ref');
    expect(env.find((e) => e.name === 'TWISTER2_WORKER_ID')).toBeUndefined();
    expect(env.find((e) => e.name === 'TWISTER2_POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
  });

  it('limits CPU only with cpuPinning (Guaranteed QoS), and asks for GPUs and disk', () => {
    expect(workerResources(jobOf({ resources: { cpu: 0.5, memory: '512Mi' } }))).toEqual({ requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '512Mi' } });
    expect(workerResources(jobOf({ resources: { cpu: 2, memory: '1G' }, kubernetes: { cpuPinning: true } }))).toEqual({ requests: { cpu: '2', memory: '1000000000' }, limits: { cpu: '2', memory: '1000000000' } });
    expect(workerResources(jobOf({ resources: { gpus: 2, disk: '20Gi' }, kubernetes: { gpuResource: 'amd.com/gpu' } }))).toEqual({
      requests: { cpu: '1', memory: '512Mi', 'amd.com/gpu': '2', 'ephemeral-storage': '20Gi' },
      limits: { memory: '512Mi', 'amd.com/gpu': '2', 'ephemeral-storage': '20Gi' },
    });
  });

  it('places pods: node affinity, same node or spread, tolerations, priority', () => {
    expect(podSpec().affinity).toBeUndefined();
    const selector = { labelSelector: { matchLabels: { 'twister2.io/job': JOB_ID, 'twister2.io/role': 'worker' } }, topologyKey: 'kubernetes.io/hostname' };
    expect(podSpec({ kubernetes: { podPlacement: { workers: 'same-node' } } }).affinity).toEqual({ podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [selector] } });
    expect(podSpec({ kubernetes: { podPlacement: { workers: 'spread' } } }).affinity).toEqual({ podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [selector] } });
    const p = podSpec({
      kubernetes: {
        podPlacement: {
          requiredNodeAffinity: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }, { key: 'spot', operator: 'DoesNotExist' }],
          preferredNodeAffinity: [{ weight: 20, key: 'cores', operator: 'Gt', values: ['16'] }],
          tolerations: [{ key: 'dedicated', value: 'ml', effect: 'NoSchedule' }, { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 }],
          priorityClassName: 'high',
        },
      },
    });
    expect(p.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }, { key: 'spot', operator: 'DoesNotExist' }] }],
        },
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 20, preference: { matchExpressions: [{ key: 'cores', operator: 'Gt', values: ['16'] }] } }],
      },
    });
    expect(p.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' },
      { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 },
    ]);
    expect(p.priorityClassName).toBe('high');
  });

  it('mounts the volumes the spec asks for', () => {
    const vols = (volumes: Record<string, unknown>) => {
      const p = podSpec({ kubernetes: { volumes } });
      return { volumes: p.volumes, mounts: p.containers[0]!.volumeMounts };
    };
    expect(vols({})).toEqual({ volumes: [{ name: 'shared', emptyDir: {} }], mounts: [{ name: 'shared', mountPath: '/twister2/shared' }] });
    expect(vols({ memory: {} }).volumes).toEqual([{ name: 'shared', emptyDir: { medium: 'Memory' } }]);
    expect(vols({ disk: { sizeLimit: '10Gi' } }).volumes?.[1]).toEqual({ name: 'scratch', emptyDir: { sizeLimit: '10Gi' } });
    expect(vols({ persistent: { nfs: { server: '10.0.0.9', path: '/export/data', readOnly: true }, mountPath: '/data' } })).toEqual({
      volumes: [{ name: 'shared', emptyDir: {} }, { name: 'persistent', nfs: { server: '10.0.0.9', path: '/export/data', readOnly: true } }],
      mounts: [{ name: 'shared', mountPath: '/twister2/shared' }, { name: 'persistent', mountPath: '/data', readOnly: true }],
    });
    expect(vols({ persistent: { pvc: { storageClass: 'rwx', size: '5Gi' } } }).volumes?.[1]).toEqual({ name: 'persistent', persistentVolumeClaim: { claimName: `${JOB_ID}-data` } });
  });

  it('runs OpenMPI: one container per pod with sshd, the key pair, and mpirun in pod 0', () => {
    const p = podSpec({ kubernetes: { workersPerPod: 3, openmpi: true }, resources: { cpu: 1, memory: '1Gi' } });
    expect(p.containers.map((c) => c.name)).toEqual(['mpi']);
    const c = p.containers[0]!;
    expect(c.resources).toEqual({ requests: { cpu: '3', memory: '3Gi' }, limits: { memory: '3Gi' } });
    expect(c.env!.some((e) => e.name === 'TWISTER2_CONTAINER_INDEX')).toBe(false);
    expect(p.volumes?.find((v) => v.name === 'ssh')?.secret?.items?.map((i) => i.path)).toEqual(['id_ed25519', 'id_ed25519.pub', 'authorized_keys']);
    expect(c.command?.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    const script = c.command![2]!;
    // Pod 0 writes the hostfile from the API server's list of the group's 2 pods, 3 slots each.
    expect(script).toContain(`node /opt/twister2/dist/launchers/k8s/kube-hostfile-main.js /twister2/shared/hostfile 'app.kubernetes.io/managed-by=twister2,twister2.io/job=${JOB_ID},twister2.io/role=worker,twister2.io/worker-group=0' 2 3`);
    expect(script).toMatch(/mpirun -np 6 --hostfile \/twister2\/shared\/hostfile --bind-to none --allow-run-as-root --tag-output --mca plm_rsh_agent ssh --mca rtc_hwloc_vmhole none -x TWISTER2_CLUSTER .*-x TWISTER2_JOB_TOKEN .*-x TWISTER2_WORK_DIR node \/opt\/twister2\/dist\/worker\/main.js/);
    expect(script).not.toContain(TOKEN);
  });

  it('writes the OpenMPI script', () => {
    const job = jobOf({ workers: 4, kubernetes: { workersPerPod: 2, openmpi: true } });
    expect(openmpiScript(job, { group: { index: 0, workers: 4 }, program: ['node', 'main.js'], envNames: ['TWISTER2_JOB_ID'] })).toMatchInlineSnapshot(`
      "set -u
      mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh
      install -m 600 /etc/twister2/ssh/id_ed25519 /root/.ssh/id_ed25519
      install -m 600 /etc/twister2/ssh/authorized_keys /root/.ssh/authorized_keys
      printf '%s\\n' 'Host *' '  IdentityFile /root/.ssh/id_ed25519' '  StrictHostKeyChecking no' '  UserKnownHostsFile /dev/null' '  LogLevel ERROR' > /root/.ssh/config
      ssh-keygen -A >/dev/null
      if [ "\${TWISTER2_POD_NAME##*-}" != 0 ]; then exec /usr/sbin/sshd -D -e; fi
      /usr/sbin/sshd -e || exit 1
      if [ -e /twister2/shared/.twister2-mpirun-status ]; then echo "twister2: mpirun already ran in this pod (status $(cat /twister2/shared/.twister2-mpirun-status)); not starting it again"; exec sleep infinity; fi
      if ! node /opt/twister2/dist/launchers/k8s/kube-hostfile-main.js /twister2/shared/hostfile 'app.kubernetes.io/managed-by=twister2,twister2.io/job=train-20261122073606-e203,twister2.io/role=worker,twister2.io/worker-group=0' 2 2; then echo 1 > /twister2/shared/.twister2-mpirun-status; echo "twister2: mpirun exited with status 1"; exec sleep infinity; fi
      mpirun -np 4 --hostfile /twister2/shared/hostfile --bind-to none --allow-run-as-root --tag-output --mca plm_rsh_agent ssh --mca rtc_hwloc_vmhole none -x TWISTER2_JOB_ID node main.js
      status=$?
      echo "$status" > /twister2/shared/.twister2-mpirun-status
      echo "twister2: mpirun exited with status $status"
      exec sleep infinity"
    `);
  });

  it('makes plain pods with the same names and DNS as the StatefulSet would', () => {
    const job = jobOf({ kubernetes: { workersPerPod: 3 } });
    const pod = workerPod(job, { env: envOf(job) }, 1);
    expect(pod.metadata?.name).toBe(`${JOB_ID}-w0-1`);
    expect(pod.metadata?.labels?.['twister2.io/ordinal']).toBe('1');
    expect(pod.spec).toMatchObject({ hostname: `${JOB_ID}-w0-1`, subdomain: `${JOB_ID}-w0`, restartPolicy: 'Never' });
  });
});

describe('the other objects of a job', () => {
  it('builds the root ConfigMap without credentials and the owner reference from the created one', () => {
    const spec = parseSpec({ ...base, uploader: { kind: 's3', s3: { bucket: 'bkt', credentials: { accessKeyId: 'AKIA', secretAccessKey: 'very-secret' } } } });
    const root = rootConfigMap(JOB_ID, spec);
    expect(root.metadata).toEqual({ name: JOB_ID, namespace: 'default', labels: { 'app.kubernetes.io/managed-by': 'twister2', 'twister2.io/job': JOB_ID } });
    expect(root.data?.['spec.json']).not.toContain('very-secret');
    expect(JSON.parse(root.data!['spec.json']!).workers).toBe(6);
    expect(() => rootOwnerReference(root)).toThrow(/has no uid/);
    expect(rootOwnerReference({ ...root, metadata: { ...root.metadata, uid: 'u-1' } })).toEqual({ apiVersion: 'v1', kind: 'ConfigMap', name: JOB_ID, uid: 'u-1', blockOwnerDeletion: true, controller: false });
  });

  it('keeps the worker token, package reference, uploader credentials and SSH keys in the Secret; the admin secret only for a job master pod', () => {
    const job = jobOf();
    expect(jobSecret(job, { token: TOKEN }).stringData).toEqual({ 'worker-token': workerTokenOf(TOKEN) });
    expect(jobSecret(job, { token: TOKEN, withJobSecret: true }).stringData).toEqual({ 'worker-token': workerTokenOf(TOKEN), token: TOKEN });
    const s = jobSecret(job, {
      token: TOKEN,
      packageRef: { kind: 'file', path: '/twister2/shared/p.tar.gz', sha256: 'b'.repeat(64), size: 1 },
      uploaderSecrets: { httpToken: 'h' },
      ssh: { privateKey: 'PRIVATE', publicKey: 'ssh-ed25519 AAAA twister2' },
    });
    expect(Object.keys(s.stringData!)).toEqual(['worker-token', 'package-ref', 'uploader-secrets', 'ssh-privatekey', 'ssh-publickey']);
    expect(s.metadata?.ownerReferences).toEqual([OWNER]);
  });

  it('gives the job master exactly its rights, in its namespace', () => {
    const job = jobOf();
    expect(jobMasterRole(job).rules).toMatchInlineSnapshot(`
      [
        {
          "apiGroups": [
            "",
          ],
          "resources": [
            "pods",
          ],
          "verbs": [
            "get",
            "list",
            "watch",
          ],
        },
        {
          "apiGroups": [
            "",
          ],
          "resources": [
            "pods/log",
          ],
          "verbs": [
            "get",
          ],
        },
        {
          "apiGroups": [
            "",
          ],
          "resources": [
            "pods/exec",
          ],
          "verbs": [
            "create",
            "get",
          ],
        },
        {
          "apiGroups": [
            "apps",
          ],
          "resourceNames": [
            "train-20261122073606-e203-w0",
          ],
          "resources": [
            "statefulsets",
            "statefulsets/scale",
          ],
          "verbs": [
            "get",
            "patch",
          ],
        },
        {
          "apiGroups": [
            "",
          ],
          "resourceNames": [
            "train-20261122073606-e203",
          ],
          "resources": [
            "configmaps",
          ],
          "verbs": [
            "get",
            "delete",
          ],
        },
        {
          "apiGroups": [
            "",
          ],
          "resourceNames": [
            "train-20261122073606-e203-journal",
          ],
          "resources": [
            "configmaps",
          ],
          "verbs": [
            "get",
            "update",
            "patch",
          ],
        },
        {
          "apiGroups": [
            "",
          ],
          "resources": [
            "events",
          ],
          "verbs": [
            "create",
          ],
        },
      ]
    `);
    expect(jobMasterRoleBinding(job).subjects).toEqual([{ kind: 'ServiceAccount', name: `${JOB_ID}-jm`, namespace: 'default' }]);
  });

  it('builds the job master StatefulSet', () => {
    const job = jobOf({ kubernetes: { podPlacement: { tolerations: [{ key: 'k', operator: 'Exists' }], workers: 'same-node' } } });
    expect(jobMasterStatefulSet(job)).toMatchInlineSnapshot(`
      {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
          "labels": {
            "app.kubernetes.io/managed-by": "twister2",
            "twister2.io/job": "train-20261122073606-e203",
            "twister2.io/role": "jobmaster",
          },
          "name": "train-20261122073606-e203-jm",
          "namespace": "default",
          "ownerReferences": [
            {
              "apiVersion": "v1",
              "blockOwnerDeletion": true,
              "controller": false,
              "kind": "ConfigMap",
              "name": "train-20261122073606-e203",
              "uid": "00000000-1111-2222-3333-444444444444",
            },
          ],
        },
        "spec": {
          "podManagementPolicy": "Parallel",
          "replicas": 1,
          "revisionHistoryLimit": 1,
          "selector": {
            "matchLabels": {
              "app.kubernetes.io/managed-by": "twister2",
              "twister2.io/job": "train-20261122073606-e203",
              "twister2.io/role": "jobmaster",
            },
          },
          "serviceName": "train-20261122073606-e203-jm",
          "template": {
            "metadata": {
              "labels": {
                "app.kubernetes.io/managed-by": "twister2",
                "twister2.io/job": "train-20261122073606-e203",
                "twister2.io/role": "jobmaster",
              },
            },
            "spec": {
              "automountServiceAccountToken": true,
              "containers": [
                {
                  "command": [
                    "node",
                    "/opt/twister2/bin/twister2.js",
                    "jobmaster",
                    "--in-cluster",
                  ],
                  "env": [
                    {
                      "name": "TWISTER2_JOB_ID",
                      "value": "train-20261122073606-e203",
                    },
                    {
                      "name": "TWISTER2_CLUSTER",
                      "value": "kubernetes",
                    },
                    {
                      "name": "TWISTER2_JOB_MASTER_PORT",
                      "value": "7575",
                    },
                    {
                      "name": "TWISTER2_JOB_SPEC_FILE",
                      "value": "/etc/twister2/job/spec.json",
                    },
                    {
                      "name": "TWISTER2_WORK_DIR",
                      "value": "/var/twister2/jobmaster",
                    },
                    {
                      "name": "TWISTER2_K8S_ROOT",
                      "value": "train-20261122073606-e203",
                    },
                    {
                      "name": "TWISTER2_K8S_ACCOUNT_DIR",
                      "value": "/var/run/secrets/kubernetes.io/serviceaccount",
                    },
                    {
                      "name": "TWISTER2_JOB_SPEC",
                      "valueFrom": {
                        "configMapKeyRef": {
                          "key": "spec.json",
                          "name": "train-20261122073606-e203",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_JOB_SECRET",
                      "valueFrom": {
                        "secretKeyRef": {
                          "key": "token",
                          "name": "train-20261122073606-e203-secret",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_PACKAGE_REF",
                      "valueFrom": {
                        "secretKeyRef": {
                          "key": "package-ref",
                          "name": "train-20261122073606-e203-secret",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_UPLOADER_SECRETS",
                      "valueFrom": {
                        "secretKeyRef": {
                          "key": "uploader-secrets",
                          "name": "train-20261122073606-e203-secret",
                          "optional": true,
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_POD_NAME",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "metadata.name",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_NAMESPACE",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "metadata.namespace",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_POD_IP",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "status.podIP",
                        },
                      },
                    },
                    {
                      "name": "TWISTER2_NODE",
                      "valueFrom": {
                        "fieldRef": {
                          "fieldPath": "spec.nodeName",
                        },
                      },
                    },
                  ],
                  "image": "twister2/worker:0.1.0",
                  "imagePullPolicy": "IfNotPresent",
                  "name": "jobmaster",
                  "ports": [
                    {
                      "containerPort": 7575,
                      "name": "http",
                      "protocol": "TCP",
                    },
                  ],
                  "readinessProbe": {
                    "periodSeconds": 2,
                    "tcpSocket": {
                      "port": 7575,
                    },
                  },
                  "resources": {
                    "limits": {
                      "memory": "512Mi",
                    },
                    "requests": {
                      "cpu": "250m",
                      "memory": "256Mi",
                    },
                  },
                  "volumeMounts": [
                    {
                      "mountPath": "/etc/twister2/job",
                      "name": "job",
                      "readOnly": true,
                    },
                    {
                      "mountPath": "/var/twister2/jobmaster",
                      "name": "work",
                    },
                  ],
                },
              ],
              "enableServiceLinks": false,
              "restartPolicy": "Always",
              "serviceAccountName": "train-20261122073606-e203-jm",
              "terminationGracePeriodSeconds": 30,
              "tolerations": [
                {
                  "key": "k",
                  "operator": "Exists",
                },
              ],
              "volumes": [
                {
                  "configMap": {
                    "name": "train-20261122073606-e203",
                  },
                  "name": "job",
                },
                {
                  "emptyDir": {},
                  "name": "work",
                },
              ],
            },
          },
          "updateStrategy": {
            "type": "OnDelete",
          },
        },
      }
    `);
    expect(jobMasterServiceUrl(job)).toBe(`http://${JOB_ID}-jm.default.svc:7575`);
  });

  it('builds the Services: headless for workers, NodePort only when asked', () => {
    const job = jobOf({ kubernetes: { nodePort: { containerPort: 8080, nodePort: 30080 } } });
    expect(workerHeadlessService(job).spec).toEqual({
      clusterIP: 'None',
      selector: { 'app.kubernetes.io/managed-by': 'twister2', 'twister2.io/job': JOB_ID, 'twister2.io/role': 'worker', 'twister2.io/worker-group': '0' },
    });
    expect(nodePortService(job)?.spec?.ports).toEqual([{ name: 'worker', port: 8080, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }]);
    expect(nodePortService(jobOf())).toBeUndefined();
    const s = workerStatefulSet(job, { env: envOf(job) });
    expect(s.spec?.template.spec?.containers[0]?.ports).toEqual([{ name: 'worker', containerPort: 8080, protocol: 'TCP' }]);
  });

  it('owns the claim unless it is kept', () => {
    const pvc = (keep: boolean) => persistentVolumeClaim(jobOf({ kubernetes: { volumes: { persistent: { pvc: { storageClass: 'rwx', size: '5Gi' }, keep } } } }));
    expect(pvc(false)?.spec).toEqual({ accessModes: ['ReadWriteMany'], storageClassName: 'rwx', resources: { requests: { storage: '5Gi' } } });
    expect(pvc(false)?.metadata?.ownerReferences).toEqual([OWNER]);
    expect(pvc(true)?.metadata?.ownerReferences).toBeUndefined();
    expect(pvc(true)?.metadata?.labels?.['twister2.io/job']).toBe(JOB_ID);
  });

  it('lists every object in creation order, each owned by the root and labelled with the job', () => {
    const job = jobOf({ kubernetes: { nodePort: { containerPort: 8080 }, volumes: { persistent: { pvc: { storageClass: 'rwx', size: '1Gi' } } } } });
    const objects = jobObjects(job, { secret: { token: TOKEN }, workers: { env: envOf(job) }, jobMaster: {} });
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      `PersistentVolumeClaim/${JOB_ID}-data`,
      `Secret/${JOB_ID}-secret`,
      `ServiceAccount/${JOB_ID}-jm`,
      `Role/${JOB_ID}-jm`,
      `RoleBinding/${JOB_ID}-jm`,
      `Service/${JOB_ID}-jm`,
      `ConfigMap/${JOB_ID}-journal`,
      `ServiceAccount/${JOB_ID}-worker`,
      `Role/${JOB_ID}-worker`,
      `RoleBinding/${JOB_ID}-worker`,
      `Service/${JOB_ID}-w0`,
      `Service/${JOB_ID}-w0-np`,
      `StatefulSet/${JOB_ID}-jm`,
      `StatefulSet/${JOB_ID}-w0`,
    ]);
    for (const o of objects) {
      expect(o.metadata?.ownerReferences).toEqual([OWNER]);
      expect(o.metadata?.labels?.['twister2.io/job']).toBe(JOB_ID);
      expect(o.metadata?.namespace).toBe('default');
      if (o.kind !== 'Secret') expect(JSON.stringify(o)).not.toContain(TOKEN);
    }
  });

  it('puts the job secret in the Secret only with a job master pod, and only that pod references it', () => {
    const job = jobOf();
    const secretOf = (objects: ReturnType<typeof jobObjects>) => objects.find((o) => o.kind === 'Secret') as { stringData: Record<string, string> };
    const withoutJm = jobObjects(job, { secret: { token: TOKEN }, workers: { env: envOf(job) } });
    expect(secretOf(withoutJm).stringData).toEqual({ 'worker-token': workerTokenOf(TOKEN) });
    const withJm = jobObjects(job, { secret: { token: TOKEN }, workers: { env: envOf(job) }, jobMaster: {} });
    expect(secretOf(withJm).stringData).toEqual({ 'worker-token': workerTokenOf(TOKEN), token: TOKEN });
    for (const o of withJm.filter((x) => x.kind === 'StatefulSet')) {
      const keys = [...JSON.stringify(o).matchAll(/"key":"([^"]+)"/g)].map((m) => m[1]);
      if (o.metadata?.name === `${JOB_ID}-jm`) expect(keys).toContain('token');
      else expect(keys).not.toContain('token');
    }
  });
});

describe("the workers' account", () => {
  it('may only delete the job\'s root ConfigMap (ending an orphaned job)', () => {
    const job = jobOf({});
    const [, role] = workerAccountObjects(job);
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['configmaps'], resourceNames: [job.names.root], verbs: ['delete'] }]);
  });

  it('may also list pods for OpenMPI (pod 0 writes the hostfile from their IPs)', () => {
    const job = jobOf({ kubernetes: { openmpi: true } });
    const [, role] = workerAccountObjects(job);
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], resourceNames: [job.names.root], verbs: ['delete'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
  });
});
