import { Stack } from 'aws-cdk-lib';
import { CORS_EXPOSED_HEADERS } from '../../shared/http/cors';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { bodyTooLarge, contentLengthOverPattern, LARGE_BODY_PATH_PATTERN, MAX_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES } from '../../shared/http/limits';
import { JSON_MEDIA_TYPE_PATTERN } from '../../shared/http/media-type';

/**
 * How far back each rate-based rule counts, in seconds. WAF accepts 60, 120, 300 and 600; the
 * limits (WAF_RATE_LIMIT_DEFAULTS in stack-config.ts, context `waf*RateLimitPerIp`) are per this
 * window. WAF re-checks the counts about every 10 seconds.
 */
export const WAF_EVALUATION_WINDOW_SECONDS = 300;

/** Rule names, also their CloudWatch metric names (`AWS/WAFV2`, dimension `Rule`): the alarm reads them. */
export const WAF_RULES = {
  exports: 'PerIpExportPosts',
  downloads: 'PerIpDownloadLinks',
  all: 'PerIpAllRequests',
} as const;

/**
 * The web ACL's name, also its metric name: one value whichever of the two CloudWatch's `WebACL`
 * dimension carries, so the alarm on blocked requests (service-alarms.ts) cannot watch a metric
 * that never arrives. Per stack, since names are unique per account and region (staging and
 * production side by side); at most WAF's 128 characters.
 */
export function webAclNameFor(stackName: string): string {
  return `${stackName.slice(0, 124)}-api`;
}

/** The rule refusing a declared body over MAX_REQUEST_BODY_BYTES (shared/http/limits.ts). */
export const WAF_BODY_SIZE_RULE = 'BodyTooLarge';
/** The rule refusing a declared body over MAX_OTHER_BODY_BYTES on anything but a JSON POST. */
export const WAF_OTHER_BODY_SIZE_RULE = 'OtherBodyTooLarge';

const bodyTooLargeBody = (limit: number): string => JSON.stringify({ error: bodyTooLarge(limit) });
/** The bodies WAF answers an oversized request with: the api's envelope, code and wording. */
export const BODY_TOO_LARGE_BODY = bodyTooLargeBody(MAX_REQUEST_BODY_BYTES);
export const OTHER_BODY_TOO_LARGE_BODY = bodyTooLargeBody(MAX_OTHER_BODY_BYTES);

/** The body WAF answers a rate-limited request with: the api's error envelope. */
export const RATE_LIMITED_BODY = JSON.stringify({
  error: { code: 'RATE_LIMITED', message: 'too many requests from this address; retry in a minute' },
});

export type ApiFirewallProps = {
  /** The REST API stage the web ACL protects. */
  stage: apigw.Stage;
  /** The admin UI's origin: a 429 without CORS headers would reach its code as a network error. */
  adminOrigin: string;
  /** Requests per client IP per WAF_EVALUATION_WINDOW_SECONDS. */
  limits: { all: number; exports: number; downloads: number };
};

/**
 * Per-client-IP rate limits in front of the REST API (AWS WAF, regional web ACL on the stage).
 *
 * Why: API Gateway's stage and method throttles are global, shared by every caller, and applied
 * before the Lambda authorizer. Without this, one unauthenticated client sending ~10 POSTs a
 * second to /v1/exports with any bearer-shaped header (or junk GETs of /v1/downloads/...) uses
 * up the shared budget and every workspace gets 429. AWS evaluates a stage's web ACL before the
 * API's other access controls (resource policy, authorizers), and a request it blocks is answered
 * by WAF without reaching the stage's methods, so it should not use their throttle budget (AWS
 * documents the order relative to access controls, not to throttling: worth a load test after the
 * first deploy). A flood from one address is turned away on its own; the stage throttles stay as
 * the global ceiling that protects the backend.
 *
 * Limits, counted per client IP over 5 minutes (rules run in this order; a request that is not
 * blocked counts towards every rule it matches, so a scoped limit must stay under the general one):
 * - `PerIpExportPosts`: every POST under /v1/exports (create, which runs a 100,000-round key
 *   derivation, cancel and revoke);
 * - `PerIpDownloadLinks`: GET and HEAD /v1/downloads/{token} (no bearer: the token is the credential);
 * - `PerIpAllRequests`: everything, the general limit.
 * A blocked request gets 429 with the api's error envelope (`RATE_LIMITED`), `Retry-After` and the
 * admin origin's CORS header.
 *
 * Paths are matched with `CONTAINS` on the URI path after URL-decoding, path normalization and
 * lower-casing, so the same rule holds for the execute-api URL (`/{stage}/v1/...`), a custom
 * domain (`/v1/...`), and encoded, doubled-slash or upper-case spellings that API Gateway might
 * route.
 *
 * Visibility: CloudWatch metrics per rule and for the ACL (free AWS/WAFV2 metrics), and an alarm
 * when any rule blocks (service-alarms.ts): a flood, or real callers over a limit. Sampled
 * requests are off, and no WAF logging is configured: both keep the full request URI and headers,
 * and /v1/downloads/{token} carries the link token (a credential) in its path, Authorization a
 * bearer token; the stage has no execution logging for the same reason.
 *
 * Limits of this control: it counts by the address WAF sees (the client's, for a regional API
 * reached directly or through an API Gateway custom domain; behind a CDN or proxy in front of API
 * Gateway it would be the proxy's, and the rules would need FORWARDED_IP). Callers behind one
 * office NAT share one budget. A flood spread across many addresses (more than ~15 at the default
 * general limit) can still reach the stage ceiling: that takes AWS Shield Advanced or Bot Control,
 * not a per-IP rule.
 */
export class ApiFirewall extends Construct {
  readonly webAcl: wafv2.CfnWebACL;
  readonly association: wafv2.CfnWebACLAssociation;
  /** The web ACL's name and metric name (the `WebACL` dimension of its metrics). */
  readonly webAclName: string;
  /** The rules' metric names (the `Rule` dimension). */
  readonly ruleMetricNames: readonly string[] = Object.values(WAF_RULES);

  constructor(scope: Construct, id: string, props: ApiFirewallProps) {
    super(scope, id);
    this.webAclName = webAclNameFor(Stack.of(this).stackName);
    const visibility = (metricName: string): wafv2.CfnWebACL.VisibilityConfigProperty => ({
      cloudWatchMetricsEnabled: true,
      metricName,
      // Samples keep the request's URI and headers: download tokens and bearer tokens.
      sampledRequestsEnabled: false,
    });
    // Decoded, normalized (//, /./, /../) and lower-cased, so a spelling API Gateway might still
    // route to the resource cannot slip past the scoped rule.
    const pathContains = (text: string): wafv2.CfnWebACL.StatementProperty => ({
      byteMatchStatement: {
        fieldToMatch: { uriPath: {} },
        positionalConstraint: 'CONTAINS',
        searchString: text,
        textTransformations: [
          { priority: 0, type: 'URL_DECODE' },
          { priority: 1, type: 'NORMALIZE_PATH' },
          { priority: 2, type: 'LOWERCASE' },
        ],
      },
    });
    const methodIs = (method: string): wafv2.CfnWebACL.StatementProperty => ({
      byteMatchStatement: {
        fieldToMatch: { method: {} },
        positionalConstraint: 'EXACTLY',
        searchString: method.toLowerCase(),
        textTransformations: [{ priority: 0, type: 'LOWERCASE' }],
      },
    });
    /**
     * Block with the api's error envelope (a custom body by key) and the admin origin's CORS
     * headers: without them the browser hides the status from the admin UI.
     */
    const blockWith = (
      responseCode: number,
      customResponseBodyKey: string,
      headers: { name: string; value: string }[] = [],
    ): wafv2.CfnWebACL.RuleActionProperty => ({
      block: {
        customResponse: {
          responseCode,
          customResponseBodyKey,
          responseHeaders: [...headers, { name: 'Access-Control-Allow-Origin', value: props.adminOrigin }, { name: 'Vary', value: 'Origin' }],
        },
      },
    });
    const blockWith429 = blockWith(429, 'RateLimited', [
      // WAF re-checks about every 10 s and lets the address through once its count over the
      // last 5 minutes is back under the limit.
      { name: 'Retry-After', value: '60' },
      // As the handler's own responses do: otherwise the admin UI's code cannot read Retry-After.
      { name: 'Access-Control-Expose-Headers', value: CORS_EXPOSED_HEADERS },
    ]);
    // A JSON body as the api's parser and the local stack tell one (shared/http/media-type.ts):
    // the pattern is lower case, and the header is lower-cased before the match.
    const jsonContentType: wafv2.CfnWebACL.StatementProperty = {
      regexMatchStatement: {
        fieldToMatch: { singleHeader: { Name: 'content-type' } },
        regexString: JSON_MEDIA_TYPE_PATTERN,
        textTransformations: [{ priority: 0, type: 'LOWERCASE' }],
      },
    };
    // The one route whose body the JSON model checks (shared/http/limits.ts, takesLargeBody): a
    // cancel's or a revoke's JSON body is not checked, and keeps the small limit.
    const createExportPath: wafv2.CfnWebACL.StatementProperty = {
      regexMatchStatement: {
        fieldToMatch: { uriPath: {} },
        regexString: LARGE_BODY_PATH_PATTERN,
        textTransformations: [{ priority: 0, type: 'NONE' }],
      },
    };
    const bodySizeRule = (
      name: string,
      priority: number,
      limit: number,
      customResponseBodyKey: string,
      scope?: wafv2.CfnWebACL.StatementProperty,
    ): wafv2.CfnWebACL.RuleProperty => {
      const tooLong: wafv2.CfnWebACL.StatementProperty = {
        regexMatchStatement: {
          fieldToMatch: { singleHeader: { Name: 'content-length' } },
          regexString: contentLengthOverPattern(limit),
          textTransformations: [{ priority: 0, type: 'NONE' }],
        },
      };
      return {
        name,
        priority,
        action: blockWith(413, customResponseBodyKey),
        statement: scope ? { andStatement: { statements: [tooLong, scope] } } : tooLong,
        visibilityConfig: visibility(name),
      };
    };
    const perIpRule = (
      name: string,
      priority: number,
      limit: number,
      scopeDownStatement?: wafv2.CfnWebACL.StatementProperty,
    ): wafv2.CfnWebACL.RuleProperty => ({
      name,
      priority,
      action: blockWith429,
      statement: {
        rateBasedStatement: {
          aggregateKeyType: 'IP',
          limit,
          evaluationWindowSec: WAF_EVALUATION_WINDOW_SECONDS,
          ...(scopeDownStatement ? { scopeDownStatement } : {}),
        },
      },
      visibilityConfig: visibility(name),
    });

    this.webAcl = new wafv2.CfnWebACL(this, 'WebAcl', {
      name: this.webAclName,
      description: 'export-service: per-client-IP rate limits and a body-size limit in front of the REST API stage',
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: visibility(this.webAclName),
      customResponseBodies: {
        RateLimited: { contentType: 'APPLICATION_JSON', content: RATE_LIMITED_BODY },
        BodyTooLarge: { contentType: 'APPLICATION_JSON', content: BODY_TOO_LARGE_BODY },
        OtherBodyTooLarge: { contentType: 'APPLICATION_JSON', content: OTHER_BODY_TOO_LARGE_BODY },
      },
      rules: [
        perIpRule(WAF_RULES.exports, 0, props.limits.exports, {
          andStatement: { statements: [methodIs('POST'), pathContains('/v1/exports')] },
        }),
        perIpRule(WAF_RULES.downloads, 1, props.limits.downloads, pathContains('/v1/downloads/')),
        // Not CORS preflights: a blocked preflight reaches the page as a network error, whatever
        // the 429 says, so the admin UI could not tell a rate limit from an outage. A preflight
        // does nothing by itself; the request it precedes is still counted.
        perIpRule(WAF_RULES.all, 2, props.limits.all, { notStatement: { statement: methodIs('OPTIONS') } }),
        // A body the api could not take (see shared/http/limits.ts: past ~6 MB of event the
        // Lambda invocation itself fails, a 5xx), refused here with 413 by its declared length.
        bodySizeRule(WAF_BODY_SIZE_RULE, 3, MAX_REQUEST_BODY_BYTES, 'BodyTooLarge'),
        // Any other request's body reaches the Lambda unchecked by the JSON model, and escaping
        // can make it six times larger there: a tighter limit for everything but a JSON POST
        // creating an export,
        // JSON by the api parser's own pattern (a CONTAINS match also let `application/jsonx`,
        // which the model does not check, have the larger limit).
        bodySizeRule(WAF_OTHER_BODY_SIZE_RULE, 4, MAX_OTHER_BODY_BYTES, 'OtherBodyTooLarge', {
          notStatement: { statement: { andStatement: { statements: [methodIs('POST'), createExportPath, jsonContentType] } } },
        }),
      ],
    });

    // The stage's ARN references the Stage resource, so the association waits for it.
    this.association = new wafv2.CfnWebACLAssociation(this, 'StageAssociation', {
      resourceArn: props.stage.stageArn,
      webAclArn: this.webAcl.attrArn,
    });
  }
}
