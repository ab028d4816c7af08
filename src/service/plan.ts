// An install as a list of steps, built by a pure function from what was found
// on the machine: `--dry-run` prints the steps as shell commands, a real run
// carries them out and reports each one done, in the same words.
import { shellWord } from '../local/command-hint.js';
import type { ServiceAccount, ServiceHost } from './host.js';

/** Whose a file becomes: root with the service user's group, or the service user. */
export type Ownership = 'root-with-user-group' | 'user' | 'root';

export type Step =
  | { kind: 'create-user'; name: string; home: string; shell: string; done: string }
  | { kind: 'own'; path: string; owner: Ownership; mode: number; done?: string }
  | { kind: 'mkdir'; path: string; mode: number; owner: Ownership; done?: string }
  | { kind: 'check-access'; path: string; access: 'read' | 'execute'; fix: string }
  | { kind: 'write'; path: string; text: string; mode: number; done?: string }
  | { kind: 'run'; command: string; args: string[]; mayFail?: boolean; done?: string }
  | { kind: 'verify-running'; unit: string; done: string; logFile?: string };

export interface InstallPlan {
  /** The account the service runs as, and its group as the shell spells it. */
  user: string;
  group: string;
  /** The service definition and where it goes (printed whole by --dry-run). */
  unitPath: string;
  unitText: string;
  steps: Step[];
  /** Things the user should know that are not steps (a pinned Node, a group to join). */
  notes: string[];
  /** Printed after a successful install. */
  footer: string[];
}

/** `useradd` for a system account that cannot log in, with its own group and the given home. */
export function useraddArgs(step: { name: string; home: string; shell: string }): string[] {
  return ['--system', '--user-group', '--home-dir', step.home, '--no-create-home', '--shell', step.shell, step.name];
}

const octal = (mode: number) => mode.toString(8).padStart(4, '0');

function ownerWords(owner: Ownership, user: string, group: string): string {
  return owner === 'user' ? `${user}:${group}` : owner === 'root' ? 'root:root' : `root:${group}`;
}

/** The step as a shell command someone could run by hand. */
export function stepAsShell(step: Step, user: string, group: string): string {
  switch (step.kind) {
    case 'create-user':
      return ['useradd', ...useraddArgs(step)].map(shellWord).join(' ');
    case 'own':
      return `chown ${ownerWords(step.owner, user, group)} ${shellWord(step.path)} && chmod ${octal(step.mode)} ${shellWord(step.path)}`;
    case 'mkdir':
      return `install -d -o ${step.owner === 'user' ? user : 'root'} -g ${step.owner === 'root' ? 'root' : group} -m ${octal(step.mode)} ${shellWord(step.path)}`;
    case 'check-access':
      return `runuser -u ${shellWord(user)} -- test -${step.access === 'read' ? 'r' : 'x'} ${shellWord(step.path)}`;
    case 'write':
      return `# write ${step.path} (mode ${octal(step.mode)}) as printed above`;
    case 'run':
      return `${[step.command, ...step.args].map(shellWord).join(' ')}${step.mayFail ? ' || true' : ''}`;
    case 'verify-running':
      return `# check that ${step.unit} is still running a few seconds later`;
  }
}

/** Stops the install before anything changed; exit 2. */
export class InstallRefused extends Error {}

/** A step failed: what happened, and the steps that had been carried out before it. */
export class StepFailed extends Error {
  constructor(
    message: string,
    readonly done: string[],
  ) {
    super(message);
  }
}

function ownerIds(owner: Ownership, account: ServiceAccount): { uid: number; gid: number } {
  return owner === 'user' ? { uid: account.uid, gid: account.gid } : owner === 'root' ? { uid: 0, gid: 0 } : { uid: 0, gid: account.gid };
}

/** Carries out the plan; returns the report lines of what was done. Throws StepFailed. */
export async function carryOut(
  host: ServiceHost,
  plan: InstallPlan,
  verify: (step: Extract<Step, { kind: 'verify-running' }>) => Promise<string | undefined>,
): Promise<string[]> {
  const done: string[] = [];
  let account = await host.lookUpUser(plan.user);
  const needAccount = (): ServiceAccount => {
    if (!account) throw new StepFailed(`the user ${plan.user} does not exist`, done);
    return account;
  };
  for (const step of plan.steps) {
    switch (step.kind) {
      case 'create-user': {
        const result = await host.run('useradd', useraddArgs(step));
        if (!result.ok) throw new StepFailed(`could not create the user ${step.name}: ${result.output.trim()}`, done);
        account = await host.lookUpUser(step.name);
        break;
      }
      case 'own':
        await host.setOwnership(step.path, ownerIds(step.owner, needAccount()), step.mode);
        break;
      case 'mkdir':
        await host.makeDirectory(step.path, step.mode, ownerIds(step.owner, needAccount()));
        break;
      case 'check-access': {
        const flag = step.access === 'read' ? '-r' : '-x';
        const result = await host.run('runuser', ['-u', plan.user, '--', 'test', flag, step.path]);
        if (!result.ok) throw new StepFailed(step.fix, done);
        break;
      }
      case 'write':
        await host.writeFile(step.path, step.text, step.mode);
        break;
      case 'run': {
        const result = await host.run(step.command, step.args);
        if (!result.ok && !step.mayFail) throw new StepFailed(`${[step.command, ...step.args].join(' ')} failed: ${result.output.trim()}`, done);
        break;
      }
      case 'verify-running': {
        const problem = await verify(step);
        if (problem) throw new StepFailed(problem, done);
        break;
      }
    }
    if ('done' in step && step.done) done.push(step.done);
  }
  return done;
}
