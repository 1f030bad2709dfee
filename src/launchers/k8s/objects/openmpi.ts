import type { MpiSpec } from '../../../spec/schema.js';
import { mpirunArgs } from '../../mpi/mpirun-command.js';
import { shellQuote } from '../../shell-quote.js';
import type { K8sJob } from './common.js';

/** Pod 0 prints this line, then the status, when mpirun ends (the launcher can read it from the pod's log). */
export const MPIRUN_EXIT_LINE = 'twister2: mpirun exited with status';
/** Where pod 0 writes the hostfile and mpirun's status (on the pod's shared volume, which survives container restarts). */
export const MPI_HOSTFILE = '/twister2/shared/hostfile';
export const MPI_STATUS_FILE = '/twister2/shared/.twister2-mpirun-status';

/** The DNS names of a group's pods (`<pod>.<headless service>`), in ordinal order. */
export function openmpiHosts(job: K8sJob, group: { index: number; workers: number }): string[] {
  const sts = job.names.workers(group.index);
  const pods = Math.ceil(group.workers / job.k8s.workersPerPod);
  return Array.from({ length: pods }, (_, i) => `${job.names.workerPod(i, group.index)}.${sts}`);
}

/**
 * The command of every OpenMPI pod (one StatefulSet template, so it branches on the pod's ordinal):
 * install the job's SSH key for root, start sshd. Pods 1.. just run sshd. Pod 0 waits until every pod
 * resolves (the headless Service publishes a pod once it is Ready, i.e. its sshd answers) and accepts
 * ssh, writes the hostfile from their pod IPs (slots = workersPerPod), and runs mpirun: rank N is
 * worker N. mpirun runs once per job: a restarted container finds its status file and only waits, so
 * the StatefulSet's restartPolicy Always never starts the ranks twice; the job master decides the outcome.
 */
export function openmpiScript(job: K8sJob, input: { group: { index: number; workers: number }; program: string[]; envNames: string[] }): string {
  const hosts = openmpiHosts(job, input.group);
  const mpi: MpiSpec = {
    hostfile: MPI_HOSTFILE,
    oversubscribe: false,
    bindToCore: false,
    mca: {},
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
    'if [ "${TWISTER2_POD_NAME##*-}" != 0 ]; then exec /usr/sbin/sshd -D -e; fi',
    '/usr/sbin/sshd -e || exit 1',
    `if [ -e ${MPI_STATUS_FILE} ]; then echo "twister2: mpirun already ran in this pod (status $(cat ${MPI_STATUS_FILE})); not starting it again"; exec sleep infinity; fi`,
    `: > ${MPI_HOSTFILE}.tmp`,
    `for host in ${hosts.map(shellQuote).join(' ')}; do`,
    '  n=0',
    '  until ip=$(getent hosts "$host" | awk \'{ print $1; exit }\') && [ -n "$ip" ] && ssh -o BatchMode=yes -o ConnectTimeout=5 "$ip" true 2>/dev/null; do',
    '    if [ $((n % 30)) -eq 0 ]; then echo "twister2: waiting for pod $host (DNS and sshd)"; fi',
    '    n=$((n + 1))',
    '    sleep 1',
    '  done',
    `  echo "$ip slots=${slots}" >> ${MPI_HOSTFILE}.tmp`,
    'done',
    `mv ${MPI_HOSTFILE}.tmp ${MPI_HOSTFILE}`,
    ['mpirun', ...args].map(shellQuote).join(' '),
    'status=$?',
    `echo "$status" > ${MPI_STATUS_FILE}`,
    `echo "${MPIRUN_EXIT_LINE} $status"`,
    'exec sleep infinity',
  ].join('\n');
}
