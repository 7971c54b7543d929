import { describe, expect, it } from 'vitest';
import { parseApiConfig } from '../../shared/config-api';

const defaults = { devSecret: 'd'.repeat(40), devIssuer: 'local-iss', devAudience: 'local-aud' };

describe('api configuration', () => {
  it('uses the local default dev secret only in the local stack', () => {
    expect(parseApiConfig({ KMS_KEY_ID: 'local' }, defaults).jwt).toEqual({ issuer: 'local-iss', audience: 'local-aud', devSecret: defaults.devSecret });
    expect(() => parseApiConfig({ KMS_KEY_ID: 'arn:aws:kms:ap-northeast-2:1:key/x' }, defaults)).toThrow(/JWT_JWKS_URL: required/);
  });

  it('needs issuer and audience with a JWKS, and refuses both key sources at once', () => {
    const aws = { KMS_KEY_ID: 'alias/x', JWT_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json', API_HMAC_SECRET_ARN: 'arn:aws:secretsmanager:ap-northeast-2:1:secret:api' };
    expect(() => parseApiConfig(aws, defaults)).toThrow(/JWT_ISSUER/);
    expect(parseApiConfig({ ...aws, JWT_ISSUER: 'https://idp', JWT_AUDIENCE: 'exports' }, defaults).jwt).toEqual({
      issuer: 'https://idp',
      audience: 'exports',
      jwksUrl: aws.JWT_JWKS_URL,
    });
    expect(() => parseApiConfig({ ...aws, JWT_DEV_SECRET: 'x'.repeat(40) }, defaults)).toThrow(/set only one/);
  });

  it('JWT_MAX_LIFETIME_SECONDS reaches the token verifier; a bad one names the variable', () => {
    expect(parseApiConfig({ KMS_KEY_ID: 'local' }, defaults).jwt.maxLifetimeSeconds).toBeUndefined(); // the verifier's default: one day
    expect(parseApiConfig({ KMS_KEY_ID: 'local', JWT_MAX_LIFETIME_SECONDS: '3600' }, defaults).jwt.maxLifetimeSeconds).toBe(3600);
    for (const value of ['', '59', '2592001', '1h']) {
      expect(() => parseApiConfig({ KMS_KEY_ID: 'local', JWT_MAX_LIFETIME_SECONDS: value }, defaults), value).toThrow(/JWT_MAX_LIFETIME_SECONDS/);
    }
  });

  it('names the variable that is wrong', () => {
    expect(() => parseApiConfig({ KMS_KEY_ID: 'local', DOWNLOAD_PRESIGN_SECONDS: 'soon' }, defaults)).toThrow(/DOWNLOAD_PRESIGN_SECONDS/);
    expect(() => parseApiConfig({ KMS_KEY_ID: 'local', JWT_DEV_SECRET: 'short' }, defaults)).toThrow(/JWT_DEV_SECRET/);
    expect(parseApiConfig({ KMS_KEY_ID: 'local' }, defaults)).toMatchObject({ DOWNLOAD_PRESIGN_SECONDS: 60, STALE_COOLDOWN_SECONDS: 120 });
  });

  it('KEY_SPIN_COUNT below the standard 100,000 only in the local stack: a lower one makes every password guess cheaper', () => {
    const aws = { KMS_KEY_ID: 'arn:aws:kms:us-east-1:1:key/k', JWT_JWKS_URL: 'https://id.example/jwks', JWT_ISSUER: 'i', JWT_AUDIENCE: 'a', API_HMAC_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:1:secret:api' };
    expect(() => parseApiConfig({ ...aws, KEY_SPIN_COUNT: '1000' }, defaults)).toThrow(/KEY_SPIN_COUNT: at least 100000 outside the local stack/);
    expect(() => parseApiConfig({ ...aws, KEY_SPIN_COUNT: '99999' }, defaults)).toThrow(/KEY_SPIN_COUNT/);
    expect(parseApiConfig({ ...aws, KEY_SPIN_COUNT: '100000' }, defaults).KEY_SPIN_COUNT).toBe(100_000);
    expect(parseApiConfig({ ...aws, KEY_SPIN_COUNT: '200000' }, defaults).KEY_SPIN_COUNT).toBe(200_000);
    expect(parseApiConfig(aws, defaults).KEY_SPIN_COUNT).toBeUndefined(); // the engine's default, 100,000
    expect(parseApiConfig({ KMS_KEY_ID: 'local', KEY_SPIN_COUNT: '1000' }, defaults).KEY_SPIN_COUNT).toBe(1000);
  });

  it('an empty or fractional cooldown is an error naming the variable, never a silent 0 that turns C8 off; an explicit 0 does', () => {
    expect(parseApiConfig({ KMS_KEY_ID: 'local', COOLDOWN_MINUTES_CASES: '0' }, defaults)).toMatchObject({ COOLDOWN_MINUTES_CASES: 0 });
    for (const value of ['', ' ', '0.001', '1.5', '0x10', 'Infinity', '-30', '1441']) {
      expect(() => parseApiConfig({ KMS_KEY_ID: 'local', COOLDOWN_MINUTES_CASES: value }, defaults), JSON.stringify(value)).toThrow(/COOLDOWN_MINUTES_CASES/);
    }
    expect(parseApiConfig({ KMS_KEY_ID: 'local', COOLDOWN_MINUTES_CASES: ' 45 ', COOLDOWN_MINUTES_CONTACTS: '30' }, defaults)).toMatchObject({
      COOLDOWN_MINUTES_CASES: 45,
      COOLDOWN_MINUTES_CONTACTS: 30,
    });
    expect(() => parseApiConfig({ KMS_KEY_ID: 'local', STALE_COOLDOWN_SECONDS: '' }, defaults)).toThrow(/STALE_COOLDOWN_SECONDS/);
  });

  it('API_HMAC_SECRET[_ARN] is required outside the local stack: the link-derived fallback is a key the finalizer and notifier could compute', () => {
    const aws = { KMS_KEY_ID: 'alias/x', JWT_JWKS_URL: 'https://id.example/jwks', JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' };
    expect(() => parseApiConfig(aws, defaults)).toThrow(/API_HMAC_SECRET_ARN: required outside the local stack/);
    expect(parseApiConfig({ ...aws, API_HMAC_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:1:secret:api' }, defaults).API_HMAC_SECRET_ARN).toBe(
      'arn:aws:secretsmanager:us-east-1:1:secret:api',
    );
    expect(parseApiConfig({ ...aws, API_HMAC_SECRET: 'h'.repeat(32) }, defaults).API_HMAC_SECRET).toBe('h'.repeat(32));
    // The local stack may fall back (functions/api/runtime.ts derives the key from the link secret).
    expect(parseApiConfig({ KMS_KEY_ID: 'local' }, defaults).API_HMAC_SECRET_ARN).toBeUndefined();
  });

  it('refuses the dev secret outside the local stack', () => {
    expect(() => parseApiConfig({ KMS_KEY_ID: 'alias/x', JWT_DEV_SECRET: 'x'.repeat(40) }, defaults)).toThrow(/JWT_DEV_SECRET: for the local stack only/);
  });
});
