export { DEFAULT_TARGET_DIR, SftpUploader, type SftpHostSpec, type SftpUploaderOptions } from './sftp-uploader.js';
export { checkHostKey, fingerprint, parseKnownHosts, type HostKeyVerdict, type KnownHostLine } from './known-hosts.js';
