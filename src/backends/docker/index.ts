export { createDockerBackend as createBackend } from './docker-backend.js';
