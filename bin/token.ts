/**
 * Prints a bearer token the local stack accepts (HS256 with JWT_DEV_SECRET or the local default).
 *   npm run token -- --channel C --manager M --permission export:download [--permission audit:read]
 *                    [--name "Kim"] [--expires 12h]
 */
import { parseArgs } from 'node:util';
import { devTokenInputSchema, signDevToken } from '../shared/auth';

const usage =
  'usage: npm run token -- --channel C --manager M --permission export:download [--permission audit:read] [--name N] [--expires 12h]';

/** The flag each claim comes from: errors name what the user typed, not the claim. */
const FLAGS: Record<string, string> = { channelId: '--channel', managerId: '--manager', name: '--name', permissions: '--permission', expiresIn: '--expires' };

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        channel: { type: 'string' },
        manager: { type: 'string' },
        name: { type: 'string' },
        permission: { type: 'string', multiple: true },
        expires: { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${usage}`);
  }
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!values.channel) throw new Error(`--channel is required\n${usage}`);
  if (!values.manager) throw new Error(`--manager is required\n${usage}`);
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
    throw new Error(`${flag}: ${issue?.message ?? 'invalid'}\n${usage}`);
  }
  console.log(await signDevToken(parsed.data));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
