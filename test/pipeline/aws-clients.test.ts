import { describe, expect, it } from 'vitest';
import { createClients, DYNAMODB_MAX_ATTEMPTS } from '../../shared/adapters/aws/clients';

describe('AWS clients', () => {
  it('DynamoDB retries a throttled write 8 times, not the default 3 (every chunk updates one hot job item)', async () => {
    const { ddb } = createClients({ AWS_REGION: 'us-east-1', DYNAMODB_ENDPOINT: 'http://127.0.0.1:1' });
    const maxAttempts = ddb.config.maxAttempts as unknown as () => Promise<number>;
    expect(DYNAMODB_MAX_ATTEMPTS).toBe(8);
    expect(await maxAttempts()).toBe(8);
  });
});
