import { KubeAccount } from './kube-account.js';
import { writeKubeHostfile } from './kube-hostfile.js';

/**
 * Run by the first pod of an OpenMPI job on Kubernetes before mpirun:
 * `node kube-hostfile-main.js <hostfile> <label selector> <pods> <slots per pod>`.
 * Prints the hostfile; exits 1 with the reason when the API server refuses.
 */
const [out, selector, pods, slots] = process.argv.slice(2);
const log = (line: string) => console.log(`twister2: ${line}`);
writeKubeHostfile(new KubeAccount(process.env), { out: out!, selector: selector!, pods: Number(pods), slots: Number(slots), log }).then(
  (lines) => log(`hostfile ${out}:\n${lines.join('\n')}`),
  (err: Error) => {
    console.error(`twister2: cannot write the MPI hostfile: ${err.message}`);
    process.exit(1);
  },
);
