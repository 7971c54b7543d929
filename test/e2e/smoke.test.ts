import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalStack, type LocalStack } from '../../infra/local/stack';
import { decryptAndRead, downloadThroughLink, http, inboxMessage, managerToken, waitForExport } from './support';

const CHANNEL = 'e2e';
let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    port: 0,
    seed: { channelId: CHANNEL, users: 300, cases: 600, seed: 11 },
    env: { POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' },
    queues: { chunk: { visibilityTimeout: 5 }, finalize: { visibilityTimeout: 20 }, notify: { visibilityTimeout: 5 } },
  });
});
afterAll(async () => stack?.stop());

describe('smoke', () => {
  it('POST -> completed -> bot link -> 302 -> file', async () => {
    const token = await managerToken(CHANNEL, 'm1');
    const res = await http(stack, 'POST', '/v1/exports', { token, body: { kind: 'contacts', scope: 'all', reason: 'smoke', password: 'Secret123!' } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const done = await waitForExport(stack, token, res.body.exportId);
    expect(done.status, JSON.stringify(done)).toBe('completed');
    const message = await inboxMessage(stack, res.body.exportId);
    const { bytes } = await downloadThroughLink(stack, message.body.link);
    const sheets = await decryptAndRead(bytes, 'Secret123!');
    expect(sheets['User data']?.length).toBe(301);
  });
});
