import type { V1Secret } from '@kubernetes/client-node';
import ssh2 from 'ssh2';
import type { JobSecrets } from '../../../job/secrets.js';
import { workerTokenOf } from '../../../job/worker-environment.js';
import type { PackageRef } from '../../../uploader/uploader.js';
import { ownedMeta, type K8sJob } from './common.js';

/** Keys of the job Secret. */
export const SECRET_KEYS = {
  /** The job's admin secret: only with a job master in a pod, whose container alone reads this key. */
  jobSecret: 'token',
  /** The worker token (the workers' TWISTER2_JOB_TOKEN): may register, heartbeat, discover, pass barriers; not scale or kill. */
  workerToken: 'worker-token',
  /** The package reference (JSON): it may hold a per-upload read token or a presigned URL. */
  packageRef: 'package-ref',
  /** The client's uploader credentials (JSON JobSecrets), for the in-cluster job master's clean-up only. */
  uploaderSecrets: 'uploader-secrets',
  sshPrivateKey: 'ssh-privatekey',
  sshPublicKey: 'ssh-publickey',
} as const;

export interface SshKeyPair {
  /** OpenSSH format. */
  privateKey: string;
  /** One authorized_keys line. */
  publicKey: string;
}

/** A fresh ed25519 key pair for one job's OpenMPI pods (they ssh into each other as root). */
export function generateSshKeyPair(comment = 'twister2'): SshKeyPair {
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  return { privateKey: pair.private, publicKey: pair.public };
}

export interface JobSecretInput {
  /** The job's admin secret; the worker token is derived from it. */
  token: string;
  /** Store the admin secret too: for a job master in a pod (jobMaster.placement cluster). */
  withJobSecret?: boolean;
  packageRef?: PackageRef;
  uploaderSecrets?: JobSecrets;
  /** For OpenMPI jobs. */
  ssh?: SshKeyPair;
}

/** The job's Secret: everything a pod needs that must not be in a ConfigMap or a pod spec. */
export function jobSecret(job: K8sJob, input: JobSecretInput): V1Secret {
  const data: Record<string, string> = { [SECRET_KEYS.workerToken]: workerTokenOf(input.token) };
  if (input.withJobSecret) data[SECRET_KEYS.jobSecret] = input.token;
  if (input.packageRef) data[SECRET_KEYS.packageRef] = JSON.stringify(input.packageRef);
  if (input.uploaderSecrets && Object.keys(input.uploaderSecrets).length > 0) data[SECRET_KEYS.uploaderSecrets] = JSON.stringify(input.uploaderSecrets);
  if (input.ssh) {
    data[SECRET_KEYS.sshPrivateKey] = input.ssh.privateKey;
    data[SECRET_KEYS.sshPublicKey] = input.ssh.publicKey.trim() + '\n';
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: ownedMeta(job, job.names.secret),
    type: 'Opaque',
    stringData: data,
  };
}
