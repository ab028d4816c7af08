#!/usr/bin/env node
// Entry point. The compile cache keeps start-up fast for a service restarted often.
import module from 'node:module';

module.enableCompileCache?.();
await import('../dist/main.js');
