/**
 * Prints a bearer token the local stack accepts (HS256 with JWT_DEV_SECRET or the local default).
 *   npm run token -- --channel C --manager M --permission export:download [--permission audit:read]
 *                    [--name "Kim"] [--expires 12h]
 * Exit codes: 0 printed, 2 bad usage (as npm run xlsx and npm run seed), 1 other failures.
 */
import { DEFAULT_MAX_TOKEN_LIFETIME_SECONDS, devTokenInputSchema, parseSpanSeconds, PERMISSIONS, signDevToken } from '../shared/auth';
import { tokenLifetimeSetting } from '../shared/config';
import { InputError, parseOptions } from './cli-input';

const usage =
  'usage: npm run token -- --channel C --manager M --permission export:download [--permission audit:read] [--name N] [--expires 12h]';

/** The flag each claim comes from: errors name what the user typed, not the claim. */
const FLAGS: Record<string, string> = { channelId: '--channel', managerId: '--manager', name: '--name', permissions: '--permission', expiresIn: '--expires' };

async function main(): Promise<void> {
  // --permission is the one option meant to be repeated; any other given twice is refused
  // rather than silently taking the last (a token for another channel than the one meant).
  const values = parseOptions(
    {
      channel: { type: 'string' },
      manager: { type: 'string' },
      name: { type: 'string' },
      permission: { type: 'string', multiple: true },
      expires: { type: 'string' },
      help: { type: 'boolean' },
    },
    usage,
    { multiple: new Set(['permission']) },
  );
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!values.channel) throw new InputError(`--channel is required\n${usage}`);
  if (!values.manager) throw new InputError(`--manager is required\n${usage}`);
  // Checked here with the schema signDevToken uses, so a bad value is one line naming its flag
  // instead of the raw list of zod issues signDevToken would throw.
  const parsed = devTokenInputSchema.safeParse({
    channelId: values.channel,
    managerId: values.manager,
    name: values.name ?? values.manager,
    permissions: values.permission ?? [],
    expiresIn: values.expires ?? '12h',
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const flag = FLAGS[String(issue?.path[0])] ?? 'arguments';
    throw new InputError(`${flag}: ${issue?.message ?? 'invalid'}\n${usage}`);
  }
  // The schema takes any string (a deployed identity provider may send others), but a permission
  // the service never checks (a typo) is worth nothing: its token would get a 403 everywhere.
  const known: string[] = Object.values(PERMISSIONS);
  const unknown = parsed.data.permissions.find((p) => !known.includes(p));
  if (unknown !== undefined) {
    throw new InputError(`--permission: must be one of ${known.join(', ')} (not ${JSON.stringify(unknown)})\n${usage}`);
  }
  // The stack refuses a token valid for longer than its JWT_MAX_LIFETIME_SECONDS: say so here,
  // not with a 401 at the first request.
  const max = tokenLifetimeSetting.default(DEFAULT_MAX_TOKEN_LIFETIME_SECONDS).safeParse(process.env.JWT_MAX_LIFETIME_SECONDS);
  if (!max.success) throw new InputError(`JWT_MAX_LIFETIME_SECONDS: ${max.error.issues[0]?.message ?? 'invalid'}`);
  const { expiresIn } = parsed.data;
  const seconds = typeof expiresIn === 'number' ? expiresIn : parseSpanSeconds(expiresIn);
  // `0s` (or 0m…) passes the span's pattern but gives exp == iat: a token expired when printed.
  if (seconds <= 0) throw new InputError(`--expires: must be a positive lifetime, e.g. 30s or 12h (a token valid for 0 seconds is expired when printed)\n${usage}`);
  if (seconds > max.data) {
    throw new InputError(`--expires: at most ${max.data} seconds; the stack refuses a token valid for longer (JWT_MAX_LIFETIME_SECONDS)\n${usage}`);
  }
  console.log(await signDevToken(parsed.data));
  // Still printed (a 403 is worth testing), but said: the usage reads as if --permission were
  // required, and a token with none is refused by every endpoint.
  if (parsed.data.permissions.length === 0) {
    console.error(`note: no --permission given: this token can only cancel or revoke its own exports, every other route it is sent to answers 403 (add --permission ${known.join(' and/or ')})`);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(error instanceof InputError ? 2 : 1);
});
