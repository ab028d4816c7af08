export { createDirectBackend as createBackend } from './direct-backend.js';
