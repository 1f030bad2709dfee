/**
 * Where spec `storage` is mounted in every worker container (objects/storage-volumes.ts), and in the job
 * master pod for `persistent.logs`. Fixed: workers learn them from TWISTER2_*_MOUNT.
 */
export const STORAGE_MOUNTS = { memory: '/twister2/memory', scratch: '/twister2/scratch', persistent: '/twister2/persistent' } as const;
