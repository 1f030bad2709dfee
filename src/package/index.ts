/** Job packages: one reproducible .tar.gz per job, with a manifest, extracted only if safe. */
export { packJob, type PackageInfo, type PackJobInput } from './pack.js';
export { extractPackage, type ExtractOptions } from './extract.js';
export { safeExtractArchive } from './archive.js';
export { FORMAT_VERSION, MANIFEST_NAME, ManifestFileSchema, ManifestSchema, type Manifest, type ManifestFile } from './manifest.js';
