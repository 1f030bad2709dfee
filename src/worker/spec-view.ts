import type { Manifest } from '../package/manifest.js';
import type { JobSpec } from '../spec/schema.js';

/**
 * The job's spec for a worker: the view the client validated and normalized into the package manifest,
 * used as it is. The package's checksum was verified when it was unpacked, so the view is what the client
 * wrote. Only a package without a view (an older client) pays for the spec schema, loaded then.
 */
export async function specOfPackage(manifest: Manifest): Promise<JobSpec> {
  const view = manifest.view as Partial<JobSpec> | undefined;
  if (view && typeof view === 'object' && typeof view.worker === 'object' && typeof view.timeouts === 'object' && typeof view.resources === 'object' && typeof view.workers === 'number') {
    return view as JobSpec;
  }
  const { parseSpec } = await import('../spec/validate.js');
  return parseSpec(manifest.spec, 'the job package');
}
