import { z } from 'zod';
import { cooldownMinutesSetting, intSetting, linkTtlDaysSetting, positiveIntSetting, tokenLifetimeSetting } from '../../shared/config';

/**
 * Deploy-time settings, read from CDK context (`cdk.json` or `-c key=value`). Validated here so a
 * typo fails `cdk synth` naming the key, instead of deploying a stack that rejects every token.
 */
const httpsUrl = z.url({ protocol: /^https$/ });
const positiveInt = positiveIntSetting();
/** WAF's bounds for a rate-based rule's limit (requests per evaluation window); 10 since 2024. */
const wafRateLimit = intSetting(10, 2_000_000_000);

/**
 * Default per-IP limits of the WAF rate-based rules, in requests per client IP per 5 minutes
 * (the rules' evaluation window, WAF_EVALUATION_WINDOW_SECONDS in api-firewall.ts). Sized for a
 * support-manager tool whose callers often share one office NAT address:
 * - all: 1,000 (~3.3 requests/s sustained). One manager watching an export polls its status about
 *   every 2 s (~150 per 5 minutes) plus a few list/audit pages, so ~6 managers behind one address
 *   can poll at once; a single address can use at most ~7% of the stage's 50 rps ceiling, so
 *   exhausting it takes 15+ addresses instead of one.
 * - exports: 20 (every POST under /v1/exports: create, cancel and revoke). Creating is cooled
 *   down to one export per manager and kind per 30 minutes (C8), so a manager sends a couple of
 *   creates, a corrected body or two and maybe a cancel or a revoke in 5 minutes; 20 leaves room
 *   for several managers behind one address and stops the ~10/s unauthenticated flood within
 *   seconds.
 * - downloads: 100 (GET and HEAD /v1/downloads/...). A link is used once or twice by a person,
 *   and probed with HEAD/GET by chat previews and link checkers, whose few addresses are shared
 *   by every workspace; junk tokens are worthless to anyone sending more.
 */
export const WAF_RATE_LIMIT_DEFAULTS = { all: 1_000, exports: 20, downloads: 100 } as const;

/**
 * An https origin (scheme, host and port only), as browsers send it in `Origin`: it goes verbatim
 * into the CORS headers and ADMIN_ORIGIN, so `https://admin.example.com/` or one with a path would
 * match no browser request, and every call from the admin UI would fail CORS.
 */
const httpsOrigin = httpsUrl.superRefine((value, ctx) => {
  if (!URL.canParse(value)) return; // httpsUrl has said so
  const origin = new URL(value).origin;
  if (origin !== value) {
    ctx.addIssue({
      code: 'custom',
      message: `must be an origin as browsers send it (https://host[:port], lower case, no path, query, trailing slash or :443): ${origin}, not ${value}`,
    });
  }
});

export const stackConfigSchema = z.object({
  /** The admin UI's origin: the only origin CORS allows. */
  adminOrigin: httpsOrigin,
  /** Bearer tokens: the identity provider's issuer (`iss`), audience (`aud`) and JWKS. */
  jwtIssuer: z.string().min(1),
  jwtAudience: z.string().min(1),
  jwtJwksUrl: httpsUrl,
  /** The longest a bearer token may stay valid (JWT_MAX_LIFETIME_SECONDS; default one day, at most 30). */
  jwtMaxLifetimeSeconds: tokenLifetimeSetting.optional(),
  /** Where the notifier posts signed "file ready/failed" events. */
  botWebhookUrl: httpsUrl,
  /** Base of the links the bot posts; defaults to the stage URL (set it for a custom domain). */
  publicBaseUrl: httpsUrl.optional(),
  /** API Gateway stage; the routes themselves carry the `/v1` version. */
  stageName: z.string().regex(/^[A-Za-z0-9_]+$/, 'letters, digits and _ only').default('prod'),
  /** Link validity in days, 1-30 (LINK_TTL_DAYS, the same setting). */
  linkTtlDays: linkTtlDaysSetting.default(7),
  /** Whole minutes, 0 = off (the api's COOLDOWN_MINUTES_*; default 30). */
  cooldownMinutesCases: cooldownMinutesSetting.optional(),
  cooldownMinutesContacts: cooldownMinutesSetting.optional(),
  /**
   * Steady-state requests per second and burst for the whole stage: a global ceiling shared by
   * every caller (API Gateway applies it before the authorizer), so it protects the backend, not
   * one tenant from another. The per-IP WAF limits below do that.
   */
  throttleRateLimit: positiveInt.default(50),
  throttleBurstLimit: positiveInt.default(100),
  /**
   * WAF rate-based rules (infra/stack/api-firewall.ts): requests per client IP per 5-minute
   * window; WAF_RATE_LIMIT_DEFAULTS above explains the defaults. WAF accepts 10 to 2,000,000,000;
   * an IP over a limit gets 429 until its count falls back under it.
   */
  wafRateLimitPerIp: wafRateLimit.default(WAF_RATE_LIMIT_DEFAULTS.all),
  wafExportRateLimitPerIp: wafRateLimit.default(WAF_RATE_LIMIT_DEFAULTS.exports),
  wafDownloadRateLimitPerIp: wafRateLimit.default(WAF_RATE_LIMIT_DEFAULTS.downloads),
  /** Chunk workers at once (see the comment at the chunk event source for the reasoning). */
  chunkConcurrency: intSetting(2, 1000).default(40),
  /** Optional: e-mail subscribed to the alarm topic. */
  alarmEmail: z.email().optional(),
  /** Log retention for functions and API access logs, in days. */
  logRetentionDays: positiveInt.default(30),
})
  // A scoped limit above the general one could never trigger: every request the scoped rule lets
  // through counts towards the general rule too, which blocks the address first.
  .superRefine((config, ctx) => {
    for (const key of ['wafExportRateLimitPerIp', 'wafDownloadRateLimitPerIp'] as const) {
      if (config[key] > config.wafRateLimitPerIp) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: `must not exceed wafRateLimitPerIp (${config.wafRateLimitPerIp}): a scoped per-IP limit above the general one never triggers`,
        });
      }
    }
  });
export type StackConfig = z.infer<typeof stackConfigSchema>;
export type StackConfigInput = z.input<typeof stackConfigSchema>;

export class StackConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StackConfigError';
  }
}

/** Parses context values; the error names every bad key and the rule it broke. */
export function parseStackConfig(input: Record<string, unknown>): StackConfig {
  const result = stackConfigSchema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new StackConfigError(`invalid CDK context: ${issues}`);
  }
  return result.data;
}
