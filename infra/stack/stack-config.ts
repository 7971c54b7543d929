import { z } from 'zod';
import { cooldownMinutesSetting, intSetting, positiveIntSetting } from '../../shared/config';

/**
 * Deploy-time settings, read from CDK context (`cdk.json` or `-c key=value`). Validated here so a
 * typo fails `cdk synth` naming the key, instead of deploying a stack that rejects every token.
 */
const httpsUrl = z.url({ protocol: /^https$/ });
const positiveInt = positiveIntSetting();
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
  jwtMaxLifetimeSeconds: intSetting(60, 30 * 86_400).optional(),
  /** Where the notifier posts signed "file ready/failed" events. */
  botWebhookUrl: httpsUrl,
  /** Base of the links the bot posts; defaults to the stage URL (set it for a custom domain). */
  publicBaseUrl: httpsUrl.optional(),
  /** API Gateway stage; the routes themselves carry the `/v1` version. */
  stageName: z.string().regex(/^[A-Za-z0-9_]+$/, 'letters, digits and _ only').default('prod'),
  linkTtlDays: positiveIntSetting(30).default(7),
  /** Whole minutes, 0 = off (the api's COOLDOWN_MINUTES_*; default 30). */
  cooldownMinutesCases: cooldownMinutesSetting.optional(),
  cooldownMinutesContacts: cooldownMinutesSetting.optional(),
  /** Steady-state requests per second and burst for the whole stage. */
  throttleRateLimit: positiveInt.default(50),
  throttleBurstLimit: positiveInt.default(100),
  /** Chunk workers at once (see the comment at the chunk event source for the reasoning). */
  chunkConcurrency: intSetting(2, 1000).default(40),
  /** Optional: e-mail subscribed to the alarm topic. */
  alarmEmail: z.email().optional(),
  /** Log retention for functions and API access logs, in days. */
  logRetentionDays: positiveInt.default(30),
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
