import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ownBotEnv, startLocalStack, type LocalStack } from '../../infra/local/stack';
import { signDelivery } from '../../shared/app/notify-export';
import { ConfigError } from '../../shared/config';
import { http, managerToken, waitUntil } from '../e2e/support';

/**
 * `npm start` with BOT_WEBHOOK_URL and BOT_SIGNING_SECRET in the shell: a bot team's own bot gets
 * the deliveries, signed with their key, instead of the built-in inbox (the settings were
 * overwritten by the stack's own before).
 */
describe('ownBotEnv', () => {
  it('both or neither; an http(s) URL; the values passed on as given', () => {
    expect(ownBotEnv({})).toEqual({});
    expect(ownBotEnv({ BOT_WEBHOOK_URL: '', BOT_SIGNING_SECRET: '' })).toEqual({});
    expect(ownBotEnv({ BOT_WEBHOOK_URL: 'http://127.0.0.1:8080/hook', BOT_SIGNING_SECRET: 'k'.repeat(40) })).toEqual({
      BOT_WEBHOOK_URL: 'http://127.0.0.1:8080/hook',
      BOT_SIGNING_SECRET: 'k'.repeat(40),
    });
    const refused = (env: Record<string, string>) => {
      try {
        ownBotEnv(env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused({ BOT_WEBHOOK_URL: 'http://127.0.0.1:8080/hook' })).toMatch(/^invalid environment: BOT_SIGNING_SECRET: required with BOT_WEBHOOK_URL/);
    expect(refused({ BOT_WEBHOOK_URL: 'http://127.0.0.1:8080/hook', BOT_SIGNING_SECRET: '   ' })).toMatch(/BOT_SIGNING_SECRET: required/);
    expect(refused({ BOT_SIGNING_SECRET: 'a-secret-value-of-some-length' })).toMatch(/^invalid environment: BOT_WEBHOOK_URL: required with BOT_SIGNING_SECRET/);
    expect(refused({ BOT_WEBHOOK_URL: 'not a url', BOT_SIGNING_SECRET: 'a-secret-value-of-some-length' })).toMatch(/BOT_WEBHOOK_URL: must be an http/);
    expect(refused({ BOT_WEBHOOK_URL: 'ftp://host/x', BOT_SIGNING_SECRET: 'a-secret-value-of-some-length' })).toMatch(/BOT_WEBHOOK_URL: must be an http/);
    // The secret is a key: no refusal repeats it.
    for (const env of [{ BOT_WEBHOOK_URL: '', BOT_SIGNING_SECRET: 'a-secret-value-of-some-length' }, { BOT_WEBHOOK_URL: 'nope', BOT_SIGNING_SECRET: 'a-secret-value-of-some-length' }]) {
      expect(refused(env)).not.toContain('a-secret-value-of-some-length');
    }
  });
});

describe('the local stack with your own bot', () => {
  const CHANNEL = 'own-bot-channel';
  const SECRET = 'own-bot-signing-secret-for-this-test-0123456789';
  let stack: LocalStack;
  let server: Server;
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    stack = await startLocalStack({
      port: 0,
      seed: { channelId: CHANNEL, users: 30, cases: 0, seed: 3 },
      env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true', ...ownBotEnv({ BOT_WEBHOOK_URL: url, BOT_SIGNING_SECRET: SECRET }) },
    });
  });

  afterAll(async () => {
    await stack?.stop();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  it('delivers the completed event to it, signed with its key; the built-in inbox gets nothing', async () => {
    const token = await managerToken(CHANNEL, 'bot-team');
    const created = await http(stack, 'POST', '/v1/exports', { token, body: { kind: 'contacts', scope: 'all', reason: 'bot development', password: 'Pw!ownbot1' } });
    expect(created.status).toBe(202);
    const exportId = created.body.exportId as string;
    const delivery = await waitUntil(async () => received.find((r) => r.body.includes(exportId)), 'a delivery to our bot');
    const timestamp = String(delivery.headers['x-timestamp']);
    expect(delivery.headers['x-signature']).toBe(signDelivery(timestamp, delivery.body, SECRET));
    expect(JSON.parse(delivery.body)).toMatchObject({ type: 'export.completed', exportId, channelId: CHANNEL, rowCount: 30 });
    const inbox = await http(stack, 'GET', '/v1/dev/inbox');
    expect(JSON.stringify(inbox.body)).not.toContain(exportId);
  });
});
