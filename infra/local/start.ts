import { join } from 'node:path';
import { signDevToken } from '../../shared/auth';
import { ConfigError } from '../../shared/config';
import { DataDirBusyError } from './data-dir-lock';
import { ownBotEnv, startLocalStack } from './stack';

/**
 * `npm start`: the service on local emulators with data under `.local/` (git-ignored), the
 * API on http://127.0.0.1:3000 (PORT changes it), demo data seeded on the first run.
 */
/** A PORT the API cannot listen on: said in one line before anything starts. */
class PortSettingError extends Error {}

/**
 * PORT as the API's port: unset or empty is 3000, 0 is any free port. Anything else but a whole
 * number up to 65535 is refused here, before the emulators start and the data folder is locked:
 * listen() would throw it only after both, as a stack trace.
 */
function portFromEnv(raw: string | undefined): number {
  const text = raw?.trim() ?? '';
  if (text === '') return 3000;
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65_535) {
    throw new PortSettingError(`PORT must be a whole number from 0 to 65535 (0: any free port); got ${JSON.stringify(raw)}`);
  }
  return Number(text);
}

async function main(): Promise<void> {
  const log = (line: string) => console.log(line);
  const dataDir = process.env.LOCAL_DATA_DIR ?? join(process.cwd(), '.local');
  const port = portFromEnv(process.env.PORT);
  const ownBot = ownBotEnv(process.env);
  log(`starting the local stack (data in ${dataDir}) ...`);
  const stack = await startLocalStack({ dataDir, port, seed: true, log, env: ownBot });
  const channelId = stack.seeded?.channelId ?? 'demo';
  const manager = await signDevToken({
    channelId,
    managerId: 'manager-1',
    name: '김매니저',
    permissions: ['export:download'],
  });
  const auditor = await signDevToken({
    channelId,
    managerId: 'auditor-1',
    name: '이감사',
    permissions: ['audit:read'],
  });
  log('');
  log(`API:        ${stack.apiUrl}`);
  if (ownBot.BOT_WEBHOOK_URL) log(`Bot:        your own, at BOT_WEBHOOK_URL, signed with your BOT_SIGNING_SECRET`);
  else log(`Bot inbox:  ${stack.apiUrl}/v1/dev/inbox`);
  if (stack.seeded) {
    log(`Demo data:  channel "${channelId}": ${stack.seeded.users} users, ${stack.seeded.cases} cases`);
    // The ids carry a per-seed suffix, so a client cannot guess them: scope "segment" needs one.
    log(`Segments:   ${stack.seeded.segmentIds.join(', ') || '(none)'} (for "scope":"segment", "segmentId")`);
  }
  log('');
  log(`Manager token (export:download):\n${manager}\n`);
  log(`Auditor token (audit:read):\n${auditor}\n`);
  log('Try:');
  log(
    `curl -s -X POST ${stack.apiUrl}/v1/exports -H "Authorization: Bearer ${manager}" -H 'Content-Type: application/json' ` +
      `-d '{"kind":"contacts","scope":"all","password":"Secret123!","reason":"monthly CRM sync"}'`,
  );
  log(`curl -s ${stack.apiUrl}/v1/exports -H "Authorization: Bearer ${manager}"`);
  if (!ownBot.BOT_WEBHOOK_URL) log(`curl -s ${stack.apiUrl}/v1/dev/inbox`);
  log('');
  log('Ctrl-C stops everything.');

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping ...');
    await stack.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

/** The API's own port refused (taken, or privileged): the listen error the stack passes on. */
function isPortError(error: unknown, port: number, code: 'EADDRINUSE' | 'EACCES'): boolean {
  const e = error as NodeJS.ErrnoException & { port?: number };
  return e instanceof Error && e.code === code && e.port === port;
}

main().catch((error: unknown) => {
  // A busy data folder or port, or a bad setting, is the operator's situation, not a bug: the
  // message alone says what to do. startLocalStack has already stopped what it started and
  // released the folder (a setting it refuses, such as LOCAL_CHUNK_CONCURRENCY, before either).
  if (error instanceof DataDirBusyError || error instanceof PortSettingError || error instanceof ConfigError) {
    console.error(`npm start: ${error.message}`);
    process.exit(1);
  }
  // PORT was valid, or main() would have thrown the PortSettingError above.
  const port = portFromEnv(process.env.PORT);
  if (isPortError(error, port, 'EADDRINUSE')) {
    console.error(
      `npm start: port ${port} on 127.0.0.1 is already in use (another npm start or another program): ` +
        `stop it, or set PORT=… to a free port (e.g. PORT=${port === 3001 ? 3002 : 3001} npm start)`,
    );
  } else if (isPortError(error, port, 'EACCES')) {
    console.error(
      `npm start: port ${port} needs privileges this user does not have: ` +
        `set PORT=… to a port above 1023 (e.g. PORT=3001 npm start)`,
    );
  } else console.error(error);
  process.exit(1);
});
