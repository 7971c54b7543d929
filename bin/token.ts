/**
 * Prints a bearer token the local stack accepts (HS256 with JWT_DEV_SECRET or the local default).
 *   npm run token -- --channel C --manager M --permission export:download [--permission audit:read]
 *                    [--name "Kim"] [--expires 12h]
 */
import { parseArgs } from 'node:util';
import { signDevToken } from '../shared/auth';

const usage =
  'usage: npm run token -- --channel C --manager M --permission export:download [--permission audit:read] [--name N] [--expires 12h]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      channel: { type: 'string' },
      manager: { type: 'string' },
      name: { type: 'string' },
      permission: { type: 'string', multiple: true },
      expires: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  if (!values.channel) throw new Error(`--channel is required\n${usage}`);
  if (!values.manager) throw new Error(`--manager is required\n${usage}`);
  const token = await signDevToken({
    channelId: values.channel,
    managerId: values.manager,
    name: values.name ?? values.manager,
    permissions: values.permission ?? [],
    expiresIn: values.expires ?? '12h',
  });
  console.log(token);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
