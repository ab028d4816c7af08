// Request bodies of the local server's HTTP API. Strict: an unknown field is an
// error that names it, so a typo never silently drops a setting.
import { z } from 'zod';
import { describeZodIssues } from '../errors/zod-issues.js';

const id = z.int().positive();
const name = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

/** The agent configuration a task runs with; sent to the worker as `agent_config_snapshot`. */
export const AgentConfigSchema = z.strictObject({
  model_id: z.string().max(200).optional(),
  base_prompt: z.string().max(100_000).optional(),
  environment_id: z.string().max(200).optional(),
  profile_id: z.string().max(200).optional(),
  skill_spec: z.string().max(10_000).optional(),
  mcp_servers: z.record(z.string(), z.unknown()).optional(),
  computer_use_enabled: z.boolean().optional(),
  idle_timeout_minutes: z.int().min(0).optional(),
  harness: z.strictObject({ type: z.string().max(50) }).optional(),
  session_sharing: z.strictObject({ public_access: z.enum(['VIEWER', 'EDITOR']) }).optional(),
});
export type AgentConfig = z.infer<typeof AgentConfigSchema>;

export const OwnerInputSchema = z.strictObject({
  type: z.enum(['TEAM', 'USER'], { error: 'must be "TEAM" or "USER"' }),
  id,
});

export const CreateTaskSchema = z.strictObject({
  prompt: z
    .string()
    .max(100_000, 'must be at most 100000 characters')
    .refine((text) => text.trim() !== '', 'must not be empty or only whitespace'),
  title: z.string().max(500).optional(),
  /** Default: the caller (a user key's user, a team key's team). */
  owner: OwnerInputSchema.optional(),
  agent_config: AgentConfigSchema.optional(),
  /** Route a TEAM task to this device (it must hold an active pin for the team). */
  device_id: z.string().min(1).max(200).optional(),
});

export const CreateUserSchema = z.strictObject({ name });
export const CreateTeamSchema = z.strictObject({ name });
export const AddMemberSchema = z.strictObject({ user_id: id });
export const DefaultAgentSchema = z.strictObject({ agent_config: AgentConfigSchema });
export const CreateKeySchema = z
  .strictObject({ user_id: id.optional(), team_id: id.optional(), name: z.string().max(200).optional() })
  .refine((body) => (body.user_id === undefined) !== (body.team_id === undefined), 'give exactly one of user_id or team_id');
export const CreateDeviceSchema = z.strictObject({
  user_id: id,
  name,
  /** Default: a generated id. */
  id: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'may hold letters, digits, ".", "_" and "-" (at most 100)')
    .optional(),
});
export const CreatePinSchema = z.strictObject({ team_id: id });

/** One line per problem: `owner.type: must be "TEAM" or "USER"`. */
export function describeZodError(error: z.ZodError): string {
  return describeZodIssues(error.issues, {
    describe: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}` : issue.message,
  });
}
