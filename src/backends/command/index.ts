export { createCommandBackend as createBackend } from './command-backend.js';
