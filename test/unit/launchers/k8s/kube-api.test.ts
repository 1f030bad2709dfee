import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { describeObject, kubeError, KubernetesApiError, loadKubeConfig } from '../../../../src/launchers/k8s/kube-api.js';

const status = (code: number, reason: string, message: string, causes?: unknown[]) =>
  new ApiException(code, 'Unknown API Status Code!', JSON.stringify({ kind: 'Status', status: 'Failure', code, reason, message, ...(causes ? { details: { causes } } : {}) }), {});

describe('kubeError', () => {
  const what = 'create StatefulSet "w" in namespace "ns"';

  it('names the object, the reason and the message', () => {
    const e = kubeError(status(403, 'Forbidden', 'statefulsets.apps is forbidden: User "u" cannot create resource "statefulsets"'), what);
    expect(e).toBeInstanceOf(KubernetesApiError);
    expect(e.message).toBe('Kubernetes refused to create StatefulSet "w" in namespace "ns": Forbidden: statefulsets.apps is forbidden: User "u" cannot create resource "statefulsets"');
    expect(e.code).toBe('T2_LAUNCHER');
    expect(e.hint).toMatch(/cluster administrator/);
    expect((e as KubernetesApiError).status).toBe(403);
  });

  it('lists the fields of an Invalid object', () => {
    const e = kubeError(
      status(422, 'Invalid', 'StatefulSet.apps "w" is invalid: [...]', [
        { reason: 'FieldValueInvalid', field: 'spec.replicas', message: 'Invalid value: -1: must be greater than or equal to 0' },
        { reason: 'FieldValueRequired', field: 'spec.selector', message: 'Required value' },
      ]),
      what,
    );
    expect(e.message).toBe(`Kubernetes refused to ${what}: Invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0; spec.selector: Required value`);
  });

  it('tells quota, credentials and unreachable servers apart', () => {
    expect(kubeError(status(403, 'Forbidden', 'pods "p" is forbidden: exceeded quota: q, requested: cpu=4'), what).message).toBe(
      `Kubernetes refused to ${what}: exceeded quota: pods "p" is forbidden: exceeded quota: q, requested: cpu=4`,
    );
    expect(kubeError(new ApiException(401, 'Unauthorized', undefined, {}), what).message).toBe(`Kubernetes did not accept our credentials to ${what} (Unauthorized)`);
    expect(kubeError(new ApiException(500, 'x', 'upstream broke', {}), what).message).toBe(`Kubernetes refused to ${what}: InternalError: upstream broke`);
    expect(kubeError(Object.assign(new Error('request failed, reason: connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), what).message).toBe(
      `cannot reach the Kubernetes API server to ${what}: request failed, reason: connect ECONNREFUSED`,
    );
    const once = kubeError(status(409, 'AlreadyExists', 'x'), what);
    expect(kubeError(once, 'something else')).toBe(once);
  });

  it('describes objects', () => {
    expect(describeObject({ kind: 'Secret', metadata: { name: 's' } }, 'ns')).toBe('Secret "s" in namespace "ns"');
  });
});

describe('loadKubeConfig', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 't2-kc-'));
  const file = path.join(dir, 'config');
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443' } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'a', context: { cluster: 'c', user: 'u' } }, { name: 'b', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'a',
    }),
  );

  it('loads a kubeconfig and picks a context', () => {
    const kc = loadKubeConfig({ kubeconfig: file, context: 'b' });
    expect(kc.getCurrentContext()).toBe('b');
    expect(kc.getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
  });

  it('says what is wrong with the configuration', () => {
    expect(() => loadKubeConfig({ kubeconfig: file, context: 'prod' })).toThrow(`kubernetes.context "prod" is not in kubeconfig ${file} (kubernetes.kubeconfig); it has "a", "b"`);
    expect(() => loadKubeConfig({ kubeconfig: path.join(dir, 'missing') })).toThrow(/cannot load the Kubernetes configuration from .*missing \(kubernetes.kubeconfig\): no such file/);
  });
});
