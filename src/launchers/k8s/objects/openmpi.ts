import { ENV } from '../../../job/worker-environment.js';
import type { MpiSpec } from '../../mpi/section.js';
import { mpirunArgs } from '../../mpi/mpirun-command.js';
import { shellQuote } from '../../../shell-quote.js';
import { jobSelector } from '../names.js';
import type { K8sJob } from './common.js';

/** In the worker image: writes the hostfile from the pods the API server lists (src/launchers/k8s/kube-hostfile-main.ts). */
export const KUBE_HOSTFILE_MAIN = '/opt/twister2/dist/launchers/k8s/kube-hostfile-main.js';

/** Pod 0 prints this line, then the status, when mpirun ends (the launcher can read it from the pod's log). */
export const MPIRUN_EXIT_LINE = 'twister2: mpirun exited with status';
/** Where pod 0 writes the hostfile and mpirun's status (on the pod's shared volume, which survives container restarts). */
export const MPI_HOSTFILE = '/twister2/shared/hostfile';
export const MPI_STATUS_FILE = '/twister2/shared/.twister2-mpirun-status';

/**
 * The command of every OpenMPI pod (one StatefulSet template, so it branches on the pod's ordinal):
 * install the job's SSH key for root, start sshd. Pods 1.. just run sshd. Pod 0 asks the API server
 * (with the workers' service account, which may list pods) until every pod of the group is Running and
 * Ready (its sshd answers the readiness probe), writes the hostfile from their pod IPs (slots =
 * workersPerPod, ordinal order), and runs mpirun: rank N is worker N. mpirun runs once per job: a
 * restarted container finds its status file and only waits, so the StatefulSet's restartPolicy Always
 * never starts the ranks twice; the job master decides the outcome.
 */
export function openmpiScript(job: K8sJob, input: { group: { index: number; workers: number }; program: string[]; envNames: string[] }): string {
  const pods = Math.ceil(input.group.workers / job.k8s.workersPerPod);
  const selector = jobSelector(job.jobId, 'worker', input.group.index);
  const mpi: MpiSpec = {
    hostfile: MPI_HOSTFILE,
    oversubscribe: false,
    bindToCore: false,
    // OpenMPI 4.1's orted can segfault writing the hwloc topology into a shared-memory "VM hole"
    // (hwloc_shmem_topology_write); the shared topology only saves memory, so it is not used.
    mca: { rtc_hwloc_vmhole: 'none' },
    ssh: {},
    mpirun: 'mpirun',
  };
  const args = mpirunArgs({ mpi, np: input.group.workers, hostfile: MPI_HOSTFILE, sshWrapper: 'ssh', envNames: input.envNames, uid: 0, program: input.program });
  const slots = job.k8s.workersPerPod;
  return [
    'set -u',
    'mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh',
    'install -m 600 /etc/twister2/ssh/id_ed25519 /root/.ssh/id_ed25519',
    'install -m 600 /etc/twister2/ssh/authorized_keys /root/.ssh/authorized_keys',
    "printf '%s\\n' 'Host *' '  IdentityFile /root/.ssh/id_ed25519' '  StrictHostKeyChecking no' '  UserKnownHostsFile /dev/null' '  LogLevel ERROR' > /root/.ssh/config",
    'ssh-keygen -A >/dev/null',
    `if [ "\${${ENV.podName}##*-}" != 0 ]; then exec /usr/sbin/sshd -D -e; fi`,
    '/usr/sbin/sshd -e || exit 1',
    `if [ -e ${MPI_STATUS_FILE} ]; then echo "twister2: mpirun already ran in this pod (status $(cat ${MPI_STATUS_FILE})); not starting it again"; exec sleep infinity; fi`,
    `if ! ${['node', KUBE_HOSTFILE_MAIN, MPI_HOSTFILE, selector, String(pods), String(slots)].map(shellQuote).join(' ')}; then echo 1 > ${MPI_STATUS_FILE}; echo "${MPIRUN_EXIT_LINE} 1"; exec sleep infinity; fi`,
    ['mpirun', ...args].map(shellQuote).join(' '),
    'status=$?',
    `echo "$status" > ${MPI_STATUS_FILE}`,
    `echo "${MPIRUN_EXIT_LINE} $status"`,
    'exec sleep infinity',
  ].join('\n');
}
