/** The clusters a job can run on. A module of its own: the CLI lists them without loading the spec schema. */
export const CLUSTER_KINDS = ['local', 'kubernetes', 'slurm', 'nomad', 'mpi'] as const;
