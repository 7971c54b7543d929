import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, DEV_AUDIENCE, DEV_ISSUER, signDevToken, UnauthenticatedError } from '../../shared/auth';
import { BEARER_HEADER_PATTERN } from '../../shared/auth/bearer';

const secret = 'test-secret-test-secret-test-secret-0123';
const verifier = createTokenVerifier({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, devSecret: secret });
const claims = { channelId: 'ch-1', managerId: 'm-1', name: 'Kim', permissions: ['export:download'] };

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (error) {
    if (error instanceof UnauthenticatedError) return error.reason;
    throw error;
  }
}

describe('bearer token verification', () => {
  it('accepts a dev token and returns its claims', async () => {
    const token = await signDevToken(claims, { secret });
    const principal = await verifier.verifyAuthorization(`Bearer ${token}`);
    expect(principal).toEqual({ ...claims, expiresAt: expect.any(Number) });
  });

  it('rejects a missing header, a non-bearer header and garbage', async () => {
    expect(await reasonOf(verifier.verifyAuthorization(undefined))).toBe('missing');
    expect(await reasonOf(verifier.verifyAuthorization('Basic abc'))).toBe('invalid');
    expect(await reasonOf(verifier.verifyAuthorization('Bearer a.b.c'))).toBe('invalid');
  });

  it('accepts the header forms API Gateway lets through to the authorizer, and only those', async () => {
    const token = await signDevToken(claims, { secret });
    const edge = new RegExp(BEARER_HEADER_PATTERN);
    for (const header of [`Bearer ${token}`, `bearer ${token}`, `BEARER  ${token}`, `Bearer ${token} `]) {
      expect(edge.test(header), header.slice(0, 10)).toBe(true);
      expect(await verifier.verifyAuthorization(header)).toMatchObject(claims);
    }
    for (const header of [`Bearer${token}`, `Basic ${token}`, `Bearer ${token}.x`, ` Bearer ${token}`]) {
      expect(edge.test(header), header.slice(0, 10)).toBe(false);
      expect(await reasonOf(verifier.verifyAuthorization(header))).toBe('invalid');
    }
  });

  it('cleans the display name it shows auditors and the bot (control characters, bidi overrides, lone surrogates); refuses a lone surrogate in an id', async () => {
    const sign = (payload: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).setIssuer(DEV_ISSUER).setAudience(DEV_AUDIENCE).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const principal = await verifier.verifyToken(await sign({ ...claims, name: 'Kim\u202eevil\u202c\u0000\u001b[31m \ud800 \u200f김' }));
    // The holder did not choose the name: cleaned, not refused. The right-to-left mark stays.
    expect(principal.name).toBe('Kimevil[31m \ufffd \u200f김');
    // A subdivision flag is tag characters too, and stays; a stray tag does not.
    const flag = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';
    expect((await verifier.verifyToken(await sign({ ...claims, name: `Kim ${flag}\u{E0041}` }))).name).toBe(`Kim ${flag}`);
    expect(await reasonOf(verifier.verifyToken(await sign({ ...claims, managerId: 'm\ud800' })))).toBe('invalid');
    expect(await reasonOf(verifier.verifyToken(await sign({ ...claims, managerId: 'm\ud83d\udcca' })))).toBe('accepted');
  });

  it('cleans, never refuses, an invisible format character in the display name (zero-width space, soft hyphen, BOM, CGJ); joiners and marks stay', async () => {
    const sign = (payload: Record<string, unknown>) =>
      new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).setIssuer(DEV_ISSUER).setAudience(DEV_AUDIENCE).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));
    const principal = await verifier.verifyToken(await sign({ ...claims, name: 'K\u200bi\u00adm\ufeff \u034f김\u180e 👩\u200d💻 می\u200cخواهم \u200f' }));
    expect(principal.name).toBe('Kim 김 👩\u200d💻 می\u200cخواهم \u200f');
  });

  it('rejects a bad signature, a wrong issuer and a wrong audience', async () => {
    const other = await signDevToken(claims, { secret: 'another-secret-another-secret-another-1' });
    expect(await reasonOf(verifier.verifyToken(other))).toBe('invalid');
    expect(await reasonOf(verifier.verifyToken(await signDevToken(claims, { secret, issuer: 'evil' })))).toBe('invalid');
    expect(await reasonOf(verifier.verifyToken(await signDevToken(claims, { secret, audience: 'evil' })))).toBe('invalid');
  });

  it('rejects an expired token, judged by the injected clock', async () => {
    const issuedAt = new Date('2026-01-01T00:00:00Z');
    const token = await signDevToken({ ...claims, expiresIn: '1h' }, { secret, now: issuedAt });
    expect(await reasonOf(verifier.verifyToken(token, new Date('2026-01-01T00:30:00Z')))).toBe('accepted');
    expect(await reasonOf(verifier.verifyToken(token, new Date('2026-01-01T02:00:00Z')))).toBe('expired');
  });

  it('refuses a token valid for longer than the maximum lifetime (one day by default; configurable), with or without iat', async () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const nowSec = now.getTime() / 1000;
    expect(await reasonOf(verifier.verifyToken(await signDevToken({ ...claims, expiresIn: '24h' }, { secret, now }), now))).toBe('accepted');
    const long = await signDevToken({ ...claims, expiresIn: '25h' }, { secret, now });
    await expect(verifier.verifyToken(long, now)).rejects.toThrow(/longer than the 24 hours/);
    expect(await reasonOf(verifier.verifyToken(long, now))).toBe('invalid');
    // Issued long ago and valid for a year: refused even though little of it might remain.
    const year = await signDevToken({ ...claims, expiresIn: '52w' }, { secret, now });
    expect(await reasonOf(verifier.verifyToken(year, new Date('2026-12-30T00:00:00Z')))).toBe('invalid');
    // Without iat the lifetime is counted from now.
    const noIat = (exp: number) =>
      new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setIssuer(DEV_ISSUER).setAudience(DEV_AUDIENCE).setExpirationTime(exp).sign(new TextEncoder().encode(secret));
    expect(await reasonOf(verifier.verifyToken(await noIat(nowSec + 3600), now))).toBe('accepted');
    expect(await reasonOf(verifier.verifyToken(await noIat(nowSec + 30 * 86_400), now))).toBe('invalid');
    // An iat set in the future does not stretch it: what is left from now counts too.
    const futureIat = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).setIssuer(DEV_ISSUER).setAudience(DEV_AUDIENCE)
      .setIssuedAt(nowSec + 299 * 86_400).setExpirationTime(nowSec + 300 * 86_400).sign(new TextEncoder().encode(secret));
    expect(await reasonOf(verifier.verifyToken(futureIat, now))).toBe('invalid');
    // A stack configured for a week accepts the 25-hour token.
    const weekly = createTokenVerifier({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, devSecret: secret, maxLifetimeSeconds: 7 * 86_400 });
    expect(await reasonOf(weekly.verifyToken(long, now))).toBe('accepted');
    expect(() => createTokenVerifier({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, devSecret: secret, maxLifetimeSeconds: 31 * 86_400 })).toThrow(/maxLifetimeSeconds/);
  });

  it('rejects alg=none and tokens whose claims have the wrong shape', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ ...claims, iss: DEV_ISSUER, aud: DEV_AUDIENCE, exp: 4e9 })).toString('base64url');
    expect(await reasonOf(verifier.verifyToken(`${header}.${body}.`))).toBe('invalid');
    const noPermissions = await new SignJWT({ channelId: 'ch-1', managerId: 'm-1', name: 'Kim' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(DEV_ISSUER)
      .setAudience(DEV_AUDIENCE)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret));
    await expect(verifier.verifyToken(noPermissions)).rejects.toThrow(/permissions/);
  });

  it('rejects a channelId that is not a plain token (it names the channel\'s folder in the bucket)', async () => {
    for (const channelId of ['a/../../b', 'seedch/../seedch', '..', '.', 'ch 1', 'ch/1']) {
      const token = await new SignJWT({ ...claims, channelId })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(DEV_ISSUER)
        .setAudience(DEV_AUDIENCE)
        .setExpirationTime('1h')
        .sign(new TextEncoder().encode(secret));
      await expect(verifier.verifyToken(token), channelId).rejects.toThrow(/channelId/);
    }
    for (const channelId of ['ch-1', '123456', 'acme.prod:eu_1', 'team@acme']) {
      expect((await verifier.verifyToken(await signDevToken({ ...claims, channelId }, { secret }))).channelId).toBe(channelId);
    }
  });

  it('rejects a token without exp', async () => {
    const forever = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(DEV_ISSUER)
      .setAudience(DEV_AUDIENCE)
      .sign(new TextEncoder().encode(secret));
    expect(await reasonOf(verifier.verifyToken(forever))).toBe('invalid');
  });
});
