import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier, parseAuthorizerContext, principalFromAuthorizerContext } from '../../shared/auth';
import { KeySetUnavailableError } from '../../shared/auth/verify-token';
import { buildAllowPolicy, createAuthorize, stageWildcardArn } from '../../functions/authorizer/authorize';

const ISSUER = 'https://auth.example.test/';
const AUDIENCE = 'export-service';
const METHOD_ARN = 'arn:aws:execute-api:ap-northeast-2:123456789012:abc123/prod/GET/v1/exports/e-1';
const claims = { channelId: 'ch-1', managerId: 'm-7', name: 'Kim', permissions: ['export:download', 'audit:read'] };

let server: http.Server;
let jwksUrl: string;
let signingKey: CryptoKey;
let otherKey: CryptoKey;
let jwksRequests = 0;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('ES256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
  // A real JWKS endpoint on a free port: the verifier fetches it exactly as it would the IdP's.
  server = http.createServer((req, res) => {
    jwksRequests += 1;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
});

async function token(options: { key?: CryptoKey; issuer?: string; expiresAt?: number; payload?: Record<string, unknown> } = {}) {
  return new SignJWT(options.payload ?? claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(AUDIENCE)
    .setSubject('m-7')
    .setIssuedAt()
    .setExpirationTime(options.expiresAt ?? Math.floor(Date.now() / 1000) + 3600)
    .sign(options.key ?? signingKey);
}

function makeAuthorize() {
  const rejected: string[] = [];
  const authorize = createAuthorize({
    verifier: createTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl }),
    onRejected: (reason) => rejected.push(reason),
  });
  return { authorize, rejected };
}

describe('bearer authorizer', () => {
  it('allows a valid token for the whole stage and passes the principal as context', async () => {
    const { authorize } = makeAuthorize();
    const expiresAt = Math.floor(Date.now() / 1000) + 3600;
    const result = await authorize({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${await token({ expiresAt })}` });
    expect(result.principalId).toBe('m-7');
    expect(result.policyDocument.Statement).toEqual([
      { Action: 'execute-api:Invoke', Effect: 'Allow', Resource: 'arn:aws:execute-api:ap-northeast-2:123456789012:abc123/prod/*' },
    ]);
    expect(parseAuthorizerContext(result.context)).toEqual({ principal: claims, expiresAt });
    expect(jwksRequests).toBeGreaterThan(0);
  });

  it.each([
    ['no header', async () => ''],
    ['not a bearer token', async () => `Basic ${Buffer.from('a:b').toString('base64')}`],
    ['a token signed by another key', async () => `Bearer ${await token({ key: otherKey })}`],
    ['a token from another issuer', async () => `Bearer ${await token({ issuer: 'https://evil.example/' })}`],
    ['an expired token', async () => `Bearer ${await token({ expiresAt: Math.floor(Date.now() / 1000) - 3600 })}`],
    ['a token without the channel claim', async () => `Bearer ${await token({ payload: { managerId: 'm-7', name: 'x', permissions: [] } })}`],
  ])('answers 401 (throws "Unauthorized") for %s, and never logs the token', async (_label, header) => {
    const { authorize, rejected } = makeAuthorize();
    const authorizationToken = await header();
    await expect(authorize({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken })).rejects.toThrow(/^Unauthorized$/);
    expect(rejected).toHaveLength(1);
    const jwt = authorizationToken.replace(/^\S+\s*/, '');
    if (jwt.length > 0) expect(rejected[0]).not.toContain(jwt);
  });

  it('a key set it cannot fetch (an outage at the identity provider) fails the authorizer (a 500, alarmed), not a 401; an unknown kid stays a 401', async () => {
    const statuses = [404, 500];
    const broken = http.createServer((_req, res) => {
      res.writeHead(statuses[0] ?? 500, { 'content-type': 'text/plain' });
      res.end('down');
    });
    await new Promise<void>((resolve) => broken.listen(0, '127.0.0.1', resolve));
    const brokenUrl = `http://127.0.0.1:${(broken.address() as AddressInfo).port}/.well-known/jwks.json`;
    try {
      for (const status of [...statuses]) {
        statuses[0] = status;
        const rejected: string[] = [];
        const authorize = createAuthorize({ verifier: createTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: brokenUrl }), onRejected: (r) => rejected.push(r) });
        const outcome = authorize({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${await token()}` });
        await expect(outcome, String(status)).rejects.toBeInstanceOf(KeySetUnavailableError);
        expect(rejected, String(status)).toEqual([]);
      }
    } finally {
      await new Promise<void>((resolve) => broken.close(() => resolve()));
    }
    // Nothing listening: the same (a refused connection is not the caller's fault either).
    const unreachable = createAuthorize({ verifier: createTokenVerifier({ issuer: ISSUER, audience: AUDIENCE, jwksUrl: brokenUrl }), onRejected: () => undefined });
    await expect(unreachable({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${await token()}` })).rejects.toBeInstanceOf(KeySetUnavailableError);
    // A key the working set does not have (a forged or retired kid) is the token's problem: 401.
    const { authorize } = makeAuthorize();
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'not-in-the-set' }).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime('1h').sign(otherKey);
    await expect(authorize({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${forged}` })).rejects.toThrow(/^Unauthorized$/);
  });

  it('rejects a method ARN that is not execute-api', () => {
    expect(() => stageWildcardArn('arn:aws:s3:::bucket/key')).toThrow(/execute-api/);
    expect(() => buildAllowPolicy({ ...claims, expiresAt: 1 }, 'nonsense')).toThrow();
  });

  it('context round trip fails loudly on a tampered permission list', () => {
    expect(() => parseAuthorizerContext({ channelId: 'c', managerId: 'm', name: '', permissions: 'export:download', expiresAt: 9e9 })).toThrow(
      /permissions/,
    );
  });

  it('a cached allow stops working once its token expires (API Gateway caches it per token for minutes)', async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + 600;
    const { authorize } = makeAuthorize();
    const result = await authorize({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${await token({ expiresAt })}` });
    // API Gateway hands context values to the function as text.
    const asDelivered = Object.fromEntries(Object.entries(result.context ?? {}).map(([k, v]) => [k, String(v)]));
    expect(principalFromAuthorizerContext(asDelivered, new Date((expiresAt - 1) * 1000))).toEqual(claims);
    expect(principalFromAuthorizerContext(asDelivered, new Date((expiresAt + 59) * 1000))).toEqual(claims);
    expect(principalFromAuthorizerContext(asDelivered, new Date((expiresAt + 61) * 1000))).toBeUndefined();
    // A context without the expiry (an older authorizer, or none) is not trusted.
    const { expiresAt: _dropped, ...withoutExpiry } = asDelivered;
    void _dropped;
    expect(principalFromAuthorizerContext(withoutExpiry, new Date())).toBeUndefined();
  });

  it('refuses ids that could collide inside table keys', async () => {
    const { authorize } = makeAuthorize();
    for (const payload of [
      { ...claims, channelId: 'acme#MGR#ops' },
      { ...claims, managerId: 'ops#MGR#kim' },
      { ...claims, managerId: 'kim\u0000' },
    ]) {
      await expect(authorize({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${await token({ payload })}` })).rejects.toThrow(
        /^Unauthorized$/,
      );
    }
  });

  it('the Lambda entry reads its settings at cold start and verifies against the configured JWKS', async () => {
    process.env.JWT_ISSUER = ISSUER;
    process.env.JWT_AUDIENCE = AUDIENCE;
    process.env.JWT_JWKS_URL = jwksUrl;
    const { handler } = await import('../../functions/authorizer/handler');
    const result = await handler({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: `Bearer ${await token()}` });
    expect(result.policyDocument.Statement[0]).toMatchObject({ Effect: 'Allow' });
    await expect(handler({ type: 'TOKEN', methodArn: METHOD_ARN, authorizationToken: 'Bearer a.b.c' })).rejects.toThrow('Unauthorized');
  });
});
