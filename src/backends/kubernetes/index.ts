export { createKubernetesBackend as createBackend } from './kubernetes-backend.js';
