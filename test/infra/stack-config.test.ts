import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT, toRetentionDays } from '../../infra/stack/export-service-stack';
import { parseStackConfig, StackConfigError, WAF_RATE_LIMIT_DEFAULTS } from '../../infra/stack/stack-config';
import { TEST_CONTEXT } from './synth-stack';

describe('CDK context (stack-config)', () => {
  it('the context in cdk.json is valid and gets the documented defaults', () => {
    const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { app: string; context: Record<string, unknown> };
    expect(cdkJson.app).toBe('npx tsx infra/app.ts');
    const config = parseStackConfig(cdkJson.context);
    expect(config).toMatchObject({ stageName: 'prod', linkTtlDays: 7, chunkConcurrency: 40, throttleRateLimit: 50, logRetentionDays: 30 });
    expect(config).toMatchObject({
      wafRateLimitPerIp: WAF_RATE_LIMIT_DEFAULTS.all,
      wafExportRateLimitPerIp: WAF_RATE_LIMIT_DEFAULTS.exports,
      wafDownloadRateLimitPerIp: WAF_RATE_LIMIT_DEFAULTS.downloads,
    });
  });

  it('WAF per-IP limits: coerced from -c strings, within WAF\'s 10 to 2,000,000,000', () => {
    const config = parseStackConfig({ ...TEST_CONTEXT, wafRateLimitPerIp: '5000', wafExportRateLimitPerIp: '10', wafDownloadRateLimitPerIp: 300 });
    expect(config).toMatchObject({ wafRateLimitPerIp: 5000, wafExportRateLimitPerIp: 10, wafDownloadRateLimitPerIp: 300 });
    expect(parseStackConfig({ ...TEST_CONTEXT, wafRateLimitPerIp: 2_000_000_000 }).wafRateLimitPerIp).toBe(2_000_000_000);
  });

  it.each([
    ['wafRateLimitPerIp', { wafRateLimitPerIp: 2_000_000_001 }],
    ['wafExportRateLimitPerIp', { wafExportRateLimitPerIp: 9 }],
    ['wafDownloadRateLimitPerIp', { wafDownloadRateLimitPerIp: 'lots' }],
    ['wafExportRateLimitPerIp', { wafExportRateLimitPerIp: 12.5 }],
  ])('a bad %s fails naming the key', (key, patch) => {
    expect(() => parseStackConfig({ ...TEST_CONTEXT, ...patch })).toThrow(new RegExp(`^invalid CDK context: .*${key}: `));
  });

  it.each(['wafExportRateLimitPerIp', 'wafDownloadRateLimitPerIp'])('%s above wafRateLimitPerIp fails (it could never trigger)', (key) => {
    expect(() => parseStackConfig({ ...TEST_CONTEXT, wafRateLimitPerIp: 100, [key]: 101 })).toThrow(
      new RegExp(`^invalid CDK context: ${key}: must not exceed wafRateLimitPerIp \\(100\\)`),
    );
    expect(parseStackConfig({ ...TEST_CONTEXT, wafRateLimitPerIp: 100, [key]: 100 })[key as 'wafExportRateLimitPerIp']).toBe(100);
  });

  it('values given with -c arrive as strings and are coerced', () => {
    const config = parseStackConfig({ ...TEST_CONTEXT, linkTtlDays: '3', chunkConcurrency: '100' });
    expect(config.linkTtlDays).toBe(3);
    expect(config.chunkConcurrency).toBe(100);
    expect(parseStackConfig({ ...TEST_CONTEXT, jwtMaxLifetimeSeconds: '3600' }).jwtMaxLifetimeSeconds).toBe(3600);
  });

  it.each([
    ['adminOrigin', { adminOrigin: 'http://admin.example.com' }],
    ['jwtJwksUrl', { jwtJwksUrl: 'not a url' }],
    ['jwtIssuer', { jwtIssuer: '' }],
    ['chunkConcurrency', { chunkConcurrency: 1 }],
    ['linkTtlDays', { linkTtlDays: 0 }],
    ['stageName', { stageName: 'prod/v1' }],
    ['alarmEmail', { alarmEmail: 'nobody' }],
    ['jwtMaxLifetimeSeconds', { jwtMaxLifetimeSeconds: '31d' }],
    ['jwtMaxLifetimeSeconds', { jwtMaxLifetimeSeconds: 30 * 86_400 + 1 }],
  ])('a bad %s fails naming the key', (key, patch) => {
    expect(() => parseStackConfig({ ...TEST_CONTEXT, ...patch })).toThrow(StackConfigError);
    expect(() => parseStackConfig({ ...TEST_CONTEXT, ...patch })).toThrow(new RegExp(`^invalid CDK context: .*${key}: `));
  });

  // It goes verbatim into Access-Control-Allow-Origin and ADMIN_ORIGIN, compared with the Origin a
  // browser sends: scheme, host and port only, lower case, no default port.
  it.each(['https://admin.example.com/app/', 'https://admin.example.com/', 'https://admin.example.com?x=1', 'https://Admin.example.com', 'https://admin.example.com:443'])(
    'adminOrigin %s is not an origin and fails naming the key and the rule',
    (adminOrigin) => {
      expect(() => parseStackConfig({ ...TEST_CONTEXT, adminOrigin })).toThrow(StackConfigError);
      expect(() => parseStackConfig({ ...TEST_CONTEXT, adminOrigin })).toThrow(/^invalid CDK context: adminOrigin: must be an origin .*https:\/\/admin\.example\.com, not /);
    },
  );

  it('adminOrigin with a port other than 443 is an origin', () => {
    expect(parseStackConfig({ ...TEST_CONTEXT, adminOrigin: 'https://admin.example.com:8443' }).adminOrigin).toBe('https://admin.example.com:8443');
  });

  it('a missing required key is named', () => {
    const { botWebhookUrl: _omitted, ...rest } = TEST_CONTEXT;
    expect(() => parseStackConfig(rest)).toThrow(/botWebhookUrl/);
  });

  it('log retention rounds up to a value CloudWatch accepts', () => {
    expect(toRetentionDays(30)).toBe(30);
    expect(toRetentionDays(31)).toBe(60);
    expect(toRetentionDays(1)).toBe(1);
    expect(toRetentionDays(100_000)).toBe(9999);
  });
});
