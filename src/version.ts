// The package version, set by the bundler (`dev` when running from source).
declare const OZ_WORKER_VERSION: string;
export const VERSION = typeof OZ_WORKER_VERSION === 'string' ? OZ_WORKER_VERSION : 'dev';
