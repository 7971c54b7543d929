import type { Template } from 'aws-cdk-lib/assertions';
import { CORS_EXPOSED_HEADERS } from '../../shared/http/cors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_TOO_LARGE_BODY, OTHER_BODY_TOO_LARGE_BODY, RATE_LIMITED_BODY, WAF_BODY_SIZE_RULE, WAF_EVALUATION_WINDOW_SECONDS, WAF_OTHER_BODY_SIZE_RULE, WAF_RULES, webAclNameFor } from '../../infra/stack/api-firewall';
import { bodyLimitFor, contentLengthOverPattern, LARGE_BODY_PATH_PATTERN, MAX_OTHER_BODY_BYTES, MAX_REQUEST_BODY_BYTES } from '../../shared/http/limits';
import { isJsonMediaType, JSON_MEDIA_TYPE_PATTERN } from '../../shared/http/media-type';
import { FILE_READERS, FUNCTION_NAMES, PART_READERS, type ExportServiceStack, type FunctionName } from '../../infra/stack/export-service-stack';
import { WAF_RATE_LIMIT_DEFAULTS } from '../../infra/stack/stack-config';
import { actionCovers, roleStatements, statementAllows, statementReaches, type Statement } from './iam-statements';
import { idOf, resourcesOf, synthStack, TEST_CONTEXT, type SynthResult } from './synth-stack';

// The two gaps a security review found, as the template CloudFormation deploys:
// 1. API Gateway's throttles are global and run before the authorizer, so one unauthenticated
//    client could exhaust them for every workspace: a WAF web ACL with per-IP rate rules.
// 2. parts/ holds rows in plain deflated XML and the bucket key had the default key policy: the
//    bucket policy and the bucket key's policy now pin object reads and Decrypt to named roles.
// In-process synth without bundling (the template is all these tests read).

let synth: SynthResult;
let template: Template;
let stack: ExportServiceStack;

beforeAll(() => {
  synth = synthStack({ bundle: false });
  template = synth.template;
  stack = synth.stack;
});
afterAll(() => synth?.cleanup());

const roleId = (name: FunctionName) => idOf(stack, stack.functions[name].fn.role!);

// ---------------------------------------------------------------------------------------------
// A small evaluator for the parts of a resource policy used here: CloudFormation intrinsics are
// rendered as readable strings (`{ "Fn::GetAtt": [X, "Arn"] }` -> `X.Arn`), then statements are
// matched by principal, action, resource (IAM globbing) and condition against a request context.
// ---------------------------------------------------------------------------------------------
const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
const PSEUDO: Record<string, string> = { 'AWS::AccountId': ACCOUNT, 'AWS::Region': REGION, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com' };

function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  const v = value as Record<string, unknown>;
  if (v && typeof v.Ref === 'string') return PSEUDO[v.Ref] ?? `${v.Ref}.Ref`;
  if (v && Array.isArray(v['Fn::GetAtt'])) return (v['Fn::GetAtt'] as string[]).join('.');
  if (v && Array.isArray(v['Fn::Join'])) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(sep);
  }
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}
const list = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
const glob = (pattern: string, text: string) =>
  new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`).test(text);

type RequestContext = Record<string, string | undefined>;
type Request = { principalArn: string; action: string; resource: string; context?: RequestContext };

function conditionHolds(condition: Statement['Condition'], request: Request): boolean {
  const context: RequestContext = { 'aws:PrincipalArn': request.principalArn, 'aws:SecureTransport': 'true', 's3:TlsVersion': '1.3', ...request.context };
  for (const [operator, entries] of Object.entries(condition ?? {})) {
    for (const [key, raw] of Object.entries(entries)) {
      const wanted = list(raw as unknown).map(render);
      const actual = context[key];
      const matchesAny = actual !== undefined && wanted.some((w) => (operator.startsWith('Arn') || operator.endsWith('Like') ? glob(w, actual) : w === actual));
      switch (operator) {
        case 'ArnEquals':
        case 'ArnLike':
        case 'StringEquals':
        case 'StringLike':
        case 'Bool':
          if (!matchesAny) return false;
          break;
        case 'ArnNotEquals':
        case 'ArnNotLike':
        case 'StringNotEquals':
        case 'StringNotLike':
          // A missing key satisfies a negated operator (the deny then applies).
          if (matchesAny) return false;
          break;
        case 'NumericLessThan':
          if (actual === undefined || !(Number(actual) < Number(wanted[0]))) return false;
          break;
        default:
          throw new Error(`condition operator ${operator} not modelled`);
      }
    }
  }
  return true;
}

function statementMatches(statement: Statement, request: Request): boolean {
  const principal = statement.Principal as { AWS?: unknown } | string | undefined;
  const principals = principal === '*' ? ['*'] : list((principal as { AWS?: unknown })?.AWS).map(render);
  if (!principals.some((p) => p === '*' || p === request.principalArn || (p.endsWith(':root') && request.principalArn.startsWith(p.replace(/root$/, ''))))) return false;
  if (!list(statement.Action).some((a) => actionCovers(a, request.action))) return false;
  if (!list(statement.Resource as unknown).map(render).some((r) => glob(r, request.resource))) return false;
  return conditionHolds(statement.Condition, request);
}

const deniedBy = (statements: Statement[], request: Request) => statements.filter((s) => s.Effect === 'Deny' && statementMatches(s, request)).map((s) => s.Sid ?? '(no sid)');
const allowedBy = (statements: Statement[], request: Request) => statements.filter((s) => s.Effect === 'Allow' && statementMatches(s, request));

const roleArn = (name: FunctionName) => `${roleId(name)}.Arn`;
/** Identities of the account that are none of the service's roles. */
const OUTSIDERS = {
  admin: `arn:aws:iam::${ACCOUNT}:role/Admin`,
  dataPlatform: `arn:aws:iam::${ACCOUNT}:role/data-platform-etl`,
  root: `arn:aws:iam::${ACCOUNT}:root`,
};
const DEPLOY_ROLE = `arn:aws:iam::${ACCOUNT}:role/cdk-hnb659fds-cfn-exec-role-${ACCOUNT}-${REGION}`;

describe('WAF web ACL: per-client-IP rate limits before API Gateway\'s global throttles', () => {
  type Rule = {
    Name: string;
    Priority: number;
    Action: { Block?: { CustomResponse?: { ResponseCode: number; CustomResponseBodyKey?: string; ResponseHeaders?: { Name: string; Value: string }[] } } };
    Statement: {
      RateBasedStatement?: { AggregateKeyType: string; Limit: number; EvaluationWindowSec?: number; ScopeDownStatement?: WafStatement };
      RegexMatchStatement?: { FieldToMatch: unknown; RegexString: string; TextTransformations: unknown[] };
    };
    VisibilityConfig: { CloudWatchMetricsEnabled: boolean; SampledRequestsEnabled: boolean; MetricName: string };
  };
  const webAcl = () => {
    const acls = Object.entries(resourcesOf(template, 'AWS::WAFv2::WebACL'));
    expect(acls).toHaveLength(1);
    return { id: acls[0]![0], props: acls[0]![1].Properties! };
  };
  const allRules = () => webAcl().props.Rules as Rule[];
  /** The per-IP rate-based rules. */
  const rules = () => allRules().filter((r) => r.Statement.RateBasedStatement);
  const rule = (name: string) => rules().find((r) => r.Name === name)!;

  it('is regional, allows by default, and has exactly the three per-IP rate-based rules and the two body-size rules', () => {
    const { props } = webAcl();
    expect(props.Scope).toBe('REGIONAL');
    expect(props.DefaultAction).toEqual({ Allow: {} });
    expect(rules().map((r) => r.Name).sort()).toEqual(Object.values(WAF_RULES).sort());
    expect(allRules().map((r) => r.Name).sort()).toEqual([...Object.values(WAF_RULES), WAF_BODY_SIZE_RULE, WAF_OTHER_BODY_SIZE_RULE].sort());
    expect(new Set(allRules().map((r) => r.Priority)).size).toBe(5);
    for (const r of rules()) {
      expect(r.Statement.RateBasedStatement, r.Name).toMatchObject({ AggregateKeyType: 'IP', EvaluationWindowSec: WAF_EVALUATION_WINDOW_SECONDS });
      expect(WAF_EVALUATION_WINDOW_SECONDS).toBe(300);
    }
  });

  it('limits come from the context defaults: general, POST on /v1/exports, /v1/downloads/', () => {
    expect(rule(WAF_RULES.all).Statement.RateBasedStatement).toMatchObject({ Limit: WAF_RATE_LIMIT_DEFAULTS.all });
    expect(rule(WAF_RULES.exports).Statement.RateBasedStatement).toMatchObject({ Limit: WAF_RATE_LIMIT_DEFAULTS.exports });
    expect(rule(WAF_RULES.downloads).Statement.RateBasedStatement).toMatchObject({ Limit: WAF_RATE_LIMIT_DEFAULTS.downloads });
    // The scoped rules are tighter than the general one (else they could never trigger), and
    // every limit is one WAF accepts.
    for (const scoped of [WAF_RULES.exports, WAF_RULES.downloads]) {
      expect(rule(scoped).Statement.RateBasedStatement!.Limit).toBeLessThan(WAF_RATE_LIMIT_DEFAULTS.all);
    }
    for (const r of rules()) expect(r.Statement.RateBasedStatement!.Limit).toBeGreaterThanOrEqual(10);
  });

  it('the scope-down statements match the routes they name, however the path is spelled', () => {
    const counts = (method: string, path: string) =>
      rules()
        .filter((r) => {
          const scope = r.Statement.RateBasedStatement!.ScopeDownStatement;
          return scope === undefined || wafMatches(scope, { method, path });
        })
        .map((r) => r.Name)
        .sort();
    const all = WAF_RULES.all;
    const cases: [string, string, string[]][] = [
      // The execute-api URL carries the stage; a custom domain does not.
      ['POST', '/prod/v1/exports', [WAF_RULES.exports, all]],
      ['POST', '/v1/exports', [WAF_RULES.exports, all]],
      ['POST', '/prod/v1/exports/e1/cancel', [WAF_RULES.exports, all]],
      ['POST', '/prod/v1//exports', [WAF_RULES.exports, all]],
      ['POST', '/prod/v1/./exports', [WAF_RULES.exports, all]],
      ['POST', '/prod/v1/%65xports', [WAF_RULES.exports, all]],
      ['POST', '/prod/V1/Exports', [WAF_RULES.exports, all]],
      ['GET', '/prod/v1/exports', [all]],
      ['GET', '/prod/v1/exports/e1', [all]],
      // CORS preflights are counted by no rule: a blocked one reaches the page as a network error.
      ['OPTIONS', '/prod/v1/exports', []],
      ['OPTIONS', '/prod/v1/downloads/tok123', [WAF_RULES.downloads]],
      ['GET', '/prod/v1/downloads/tok123', [WAF_RULES.downloads, all]],
      ['HEAD', '/prod/v1/downloads/tok123', [WAF_RULES.downloads, all]],
      ['GET', '/v1/downloads/tok123', [WAF_RULES.downloads, all]],
      ['GET', '/prod/v1/%64ownloads/tok123', [WAF_RULES.downloads, all]],
      ['GET', '/prod/v1/audit', [all]],
      ['GET', '/prod/v1/audit/exports/e1/downloads', [all]],
    ];
    for (const [method, path, expected] of cases) expect(counts(method, path), `${method} ${path}`).toEqual([...expected].sort());
  });

  it('every rule blocks with 429, the api\'s error envelope, Retry-After and the admin origin\'s CORS header', () => {
    const bodies = webAcl().props.CustomResponseBodies as Record<string, { ContentType: string; Content: string }>;
    for (const r of rules()) {
      const response = r.Action.Block?.CustomResponse;
      expect(response?.ResponseCode, r.Name).toBe(429);
      const body = bodies[response!.CustomResponseBodyKey!];
      expect(body, r.Name).toEqual({ ContentType: 'APPLICATION_JSON', Content: RATE_LIMITED_BODY });
      expect(JSON.parse(body!.Content)).toMatchObject({ error: { code: 'RATE_LIMITED' } });
      const headers = Object.fromEntries((response!.ResponseHeaders ?? []).map((h) => [h.Name, h.Value]));
      expect(headers).toMatchObject({ 'Access-Control-Allow-Origin': TEST_CONTEXT.adminOrigin, 'Access-Control-Expose-Headers': CORS_EXPOSED_HEADERS, Vary: 'Origin' });
      expect(Number(headers['Retry-After'])).toBeGreaterThan(0);
    }
  });

  it('CloudWatch metrics for the ACL and each rule; no sampled requests (they keep download and bearer tokens)', () => {
    const { props } = webAcl();
    // Named per stack, its metric name the same: CloudWatch's WebACL dimension is one value either way.
    expect(props.Name).toBe(webAclNameFor(stack.stackName));
    expect(props.VisibilityConfig).toEqual({ CloudWatchMetricsEnabled: true, SampledRequestsEnabled: false, MetricName: props.Name });
    for (const r of allRules()) expect(r.VisibilityConfig, r.Name).toEqual({ CloudWatchMetricsEnabled: true, SampledRequestsEnabled: false, MetricName: r.Name });
    template.resourceCountIs('AWS::WAFv2::LoggingConfiguration', 0);
    expect(webAclNameFor('x'.repeat(200))).toHaveLength(128);
  });

  it('an alarm tells the topic when any rule blocks (WAF answers those 429s itself: no api log or metric shows them)', () => {
    type Query = { Id: string; Expression?: string; MetricStat?: { Metric: { Namespace: string; MetricName: string; Dimensions: { Name: string; Value: unknown }[] }; Period: number; Stat: string } };
    const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm'))
      .map((a) => a.Properties!)
      .filter((a) => JSON.stringify(a.Metrics ?? []).includes('"AWS/WAFV2"'));
    expect(alarms).toHaveLength(1);
    const alarm = alarms[0]!;
    expect(alarm).toMatchObject({
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: idOf(stack, stack.alarms.topic) }],
    });
    const queries = alarm.Metrics as Query[];
    const stats = queries.filter((q) => q.MetricStat).map((q) => q.MetricStat!);
    const byRule = Object.fromEntries(
      stats.map((m) => {
        const dims = Object.fromEntries(m.Metric.Dimensions.map((d) => [d.Name, d.Value]));
        expect(m.Metric).toMatchObject({ Namespace: 'AWS/WAFV2', MetricName: 'BlockedRequests' });
        expect(dims.WebACL).toBe(webAcl().props.Name);
        expect(dims.Region).toEqual({ Ref: 'AWS::Region' });
        expect(m).toMatchObject({ Period: 300, Stat: 'Sum' });
        return [dims.Rule as string, m];
      }),
    );
    // Every rule, by the metric name it publishes under, and the expression sums them all.
    expect(Object.keys(byRule).sort()).toEqual(rules().map((r) => r.VisibilityConfig.MetricName).sort());
    const expression = queries.find((q) => q.Expression)!;
    const ids = queries.filter((q) => q.MetricStat).map((q) => q.Id);
    expect(expression.Expression!.split(' + ').sort()).toEqual(ids.sort());
  });

  it('refuses a declared body over the service\'s limit with 413 BODY_TOO_LARGE (past ~3 MB a worst-case body overflowed the Lambda event: a 5xx)', () => {
    const r = allRules().find((x) => x.Name === WAF_BODY_SIZE_RULE)!;
    expect(r.Statement.RegexMatchStatement).toMatchObject({ FieldToMatch: { SingleHeader: { Name: 'content-length' } } });
    const response = r.Action.Block?.CustomResponse;
    expect(response).toMatchObject({ ResponseCode: 413, CustomResponseBodyKey: 'BodyTooLarge' });
    const bodies = webAcl().props.CustomResponseBodies as Record<string, { ContentType: string; Content: string }>;
    expect(bodies.BodyTooLarge).toEqual({ ContentType: 'APPLICATION_JSON', Content: BODY_TOO_LARGE_BODY });
    expect(JSON.parse(BODY_TOO_LARGE_BODY)).toMatchObject({ error: { code: 'BODY_TOO_LARGE' } });
    expect(Object.fromEntries((response!.ResponseHeaders ?? []).map((h) => [h.Name, h.Value]))).toMatchObject({ 'Access-Control-Allow-Origin': TEST_CONTEXT.adminOrigin });
    // The pattern (WAF's regex subset: no lookaround) matches exactly the lengths over the limit.
    const over = new RegExp(r.Statement.RegexMatchStatement!.RegexString);
    expect(MAX_REQUEST_BODY_BYTES).toBe(3_000_000);
    for (const n of ['0', '1', '2999999', '3000000', '03000000', '999999']) expect(over.test(n), n).toBe(false);
    for (const n of ['3000001', '3000010', '3000100', '3001000', '3010000', '3100000', '3999999', '4000000', '9999999', '10000000', '123456789', '0003000001']) {
      expect(over.test(n), n).toBe(true);
    }
    for (let n = 2_999_990; n <= 3_000_010; n++) expect(over.test(String(n)), String(n)).toBe(n > MAX_REQUEST_BODY_BYTES);
    // The pattern is built for any limit: exact around the other body limit too.
    const overOther = new RegExp(contentLengthOverPattern(MAX_OTHER_BODY_BYTES));
    for (let n = MAX_OTHER_BODY_BYTES - 10; n <= MAX_OTHER_BODY_BYTES + 10; n++) expect(overOther.test(String(n)), String(n)).toBe(n > MAX_OTHER_BODY_BYTES);
    for (const limit of [1, 9, 10, 99, 123_456, 2_999_999, 3_000_000, 9_999_999]) {
      const re = new RegExp(contentLengthOverPattern(limit));
      for (const n of [0, 1, limit - 1, limit, limit + 1, limit * 10, 10 ** 12]) if (n >= 0) expect(re.test(String(n)), `${limit}: ${n}`).toBe(n > limit);
      expect(re.test(`00${limit + 1}`)).toBe(true);
    }
    // Escaping at most doubles a valid JSON body: the largest one accepted still fits Lambda's event.
    const worst = JSON.stringify({ body: '\n'.repeat(MAX_REQUEST_BODY_BYTES) }).length;
    expect(worst + 64 * 1024).toBeLessThan(6_291_456);
    expect(r.Statement.RegexMatchStatement!.RegexString).not.toMatch(/\(\?[=!<]/);
  });

  it('refuses a smaller declared body on anything but a JSON POST (unchecked by the model, it can grow sixfold in the event)', () => {
    const r = allRules().find((x) => x.Name === WAF_OTHER_BODY_SIZE_RULE)!;
    const statement = r.Statement as unknown as { AndStatement: { Statements: Record<string, any>[] } };
    const [tooLong, scope] = statement.AndStatement.Statements;
    expect(tooLong!.RegexMatchStatement.RegexString).toBe(contentLengthOverPattern(MAX_OTHER_BODY_BYTES));
    expect(JSON.stringify(scope)).toContain('"NotStatement"');
    // JSON by the api parser's own pattern, on the lower-cased header (it was CONTAINS
    // "application/json", which also gave `application/jsonx` the larger limit).
    const [isPost, isCreate, isJson] = scope!.NotStatement.Statement.AndStatement.Statements as Record<string, any>[];
    expect(isPost!.ByteMatchStatement).toMatchObject({ FieldToMatch: { Method: {} }, PositionalConstraint: 'EXACTLY', SearchString: 'post' });
    // Only the route whose body the JSON model checks: a cancel's or a revoke's JSON body is not
    // checked, so it keeps the small limit (3,000,000 bytes of raw control characters there
    // overflowed the Lambda event: a 5xx).
    expect(isCreate!.RegexMatchStatement).toEqual({ FieldToMatch: { UriPath: {} }, RegexString: LARGE_BODY_PATH_PATTERN, TextTransformations: [{ Priority: 0, Type: 'NONE' }] });
    const wafPath = new RegExp(isCreate!.RegexMatchStatement.RegexString as string);
    for (const [path, large] of [
      ['/v1/exports', true],
      ['/prod/v1/exports', true],
      ['/prod/v1/exports/', true],
      ['/prod/v1/exports/0123456789abcdef/revoke', false],
      ['/prod/v1/exports/0123456789abcdef/cancel', false],
      ['/prod/v1/exports/0123456789abcdef', false],
      ['/prod/v1/exportsx', false],
      ['/prod/v1/audit', false],
    ] as const) {
      expect(wafPath.test(path), path).toBe(large);
      expect(bodyLimitFor('POST', path, 'application/json'), path).toBe(large ? MAX_REQUEST_BODY_BYTES : MAX_OTHER_BODY_BYTES);
    }
    expect(isJson!.RegexMatchStatement).toEqual({
      FieldToMatch: { SingleHeader: { Name: 'content-type' } },
      RegexString: JSON_MEDIA_TYPE_PATTERN,
      TextTransformations: [{ Priority: 0, Type: 'LOWERCASE' }],
    });
    const wafJson = new RegExp(isJson!.RegexMatchStatement.RegexString as string);
    for (const type of ['application/json', 'Application/JSON', 'application/json;charset=utf-8', 'application/json \t; charset=utf8', 'application/vnd.api+json', 'application/merge-patch+json', 'application/jsonx', 'application/json-seq', 'text/plain; x=application/json', 'text/json', '']) {
      // The web ACL, the local stack and the api's parser (isJsonMediaType) agree on every one.
      const json = isJsonMediaType(type);
      expect(wafJson.test(type.toLowerCase()), type).toBe(json);
      expect(bodyLimitFor('POST', '/v1/exports', type), type).toBe(json ? MAX_REQUEST_BODY_BYTES : MAX_OTHER_BODY_BYTES);
    }
    expect(r.Action.Block?.CustomResponse).toMatchObject({ ResponseCode: 413, CustomResponseBodyKey: 'OtherBodyTooLarge' });
    const bodies = webAcl().props.CustomResponseBodies as Record<string, { ContentType: string; Content: string }>;
    expect(bodies.OtherBodyTooLarge).toEqual({ ContentType: 'APPLICATION_JSON', Content: OTHER_BODY_TOO_LARGE_BODY });
    // 1,000,000 bytes of raw control characters, each `\u0001` (6 bytes) in the event, still fit it.
    expect(JSON.stringify({ body: '\u0001'.repeat(MAX_OTHER_BODY_BYTES) }).length + 64 * 1024).toBeLessThan(6_291_456);
    // The local stack applies the same split.
    expect(bodyLimitFor('POST', '/v1/exports', 'application/json; charset=utf-8')).toBe(MAX_REQUEST_BODY_BYTES);
    expect(bodyLimitFor('post', '/v1/exports', 'Application/JSON')).toBe(MAX_REQUEST_BODY_BYTES);
    for (const [method, type] of [['GET', undefined], ['HEAD', 'application/json'], ['POST', 'text/plain'], ['POST', undefined]] as const) {
      expect(bodyLimitFor(method, '/v1/exports', type), `${method} ${type}`).toBe(MAX_OTHER_BODY_BYTES);
    }
  });

  it('is associated with the API\'s stage', () => {
    const associations = Object.values(resourcesOf(template, 'AWS::WAFv2::WebACLAssociation'));
    expect(associations).toHaveLength(1);
    const props = associations[0]!.Properties!;
    expect(props.WebACLArn).toEqual({ 'Fn::GetAtt': [webAcl().id, 'Arn'] });
    const restApiId = idOf(stack, stack.api.restApi);
    const stageId = idOf(stack, stack.api.restApi.deploymentStage);
    expect(render(props.ResourceArn)).toBe(`arn:aws:apigateway:${REGION}::/restapis/${restApiId}.Ref/stages/${stageId}.Ref`);
  });

  it('takes its limits from the CDK context', () => {
    const custom = synthStack({ bundle: false, context: { wafRateLimitPerIp: '3000', wafExportRateLimitPerIp: 50, wafDownloadRateLimitPerIp: '200' } });
    try {
      const acl = Object.values(resourcesOf(custom.template, 'AWS::WAFv2::WebACL'))[0]!.Properties!;
      const limits = Object.fromEntries((acl.Rules as Rule[]).filter((r) => r.Statement.RateBasedStatement).map((r) => [r.Name, r.Statement.RateBasedStatement!.Limit]));
      expect(limits).toEqual({ [WAF_RULES.all]: 3000, [WAF_RULES.exports]: 50, [WAF_RULES.downloads]: 200 });
    } finally {
      custom.cleanup();
    }
  });
});

describe('bucket policy: only the roles that must read objects can', () => {
  const bucketStatements = () => {
    const bucketId = idOf(stack, stack.bucket.bucket);
    const policies = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy')).filter((p) => JSON.stringify(p.Properties!.Bucket) === JSON.stringify({ Ref: bucketId }));
    expect(policies).toHaveLength(1);
    return policies[0]!.Properties!.PolicyDocument.Statement as Statement[];
  };
  const object = (key: string) => `${idOf(stack, stack.bucket.bucket)}.Arn/${key}`;
  const bucketArn = () => `${idOf(stack, stack.bucket.bucket)}.Arn`;

  it('denies GetObject and GetObjectVersion on parts/* to every principal but the chunk and finalizer roles', () => {
    const deny = bucketStatements().find((s) => s.Effect === 'Deny' && render(list(s.Resource as unknown)[0]).endsWith('/parts/*'));
    expect(deny).toMatchObject({ Principal: { AWS: '*' }, Action: ['s3:GetObject', 's3:GetObjectVersion'] });
    expect(list(deny!.Condition?.ArnNotEquals?.['aws:PrincipalArn'] as unknown[]).map(render).sort()).toEqual([roleArn('chunk'), roleArn('finalizer')].sort());
    expect([...PART_READERS].sort()).toEqual(['chunk', 'finalizer']);
  });

  it('denies reading exports/* to every principal but the api role (its presigned download redirect)', () => {
    const deny = bucketStatements().find((s) => s.Effect === 'Deny' && render(list(s.Resource as unknown)[0]).endsWith('/exports/*'));
    expect(deny).toMatchObject({ Principal: { AWS: '*' }, Action: ['s3:GetObject', 's3:GetObjectVersion'] });
    expect(list(deny!.Condition?.ArnNotEquals?.['aws:PrincipalArn'] as unknown[]).map(render)).toEqual([roleArn('api')]);
    expect([...FILE_READERS]).toEqual(['api']);
  });

  it('evaluated: reads of a part by anyone but chunk and finalizer are denied; writes, deletes, lists and bucket management are not', () => {
    const statements = bucketStatements();
    const part = object('parts/e1/users/000001');
    for (const action of ['s3:GetObject', 's3:GetObjectVersion']) {
      for (const name of FUNCTION_NAMES) {
        const denied = deniedBy(statements, { principalArn: roleArn(name), action, resource: part });
        expect(denied.length > 0, `${name} ${action}`).toBe(!(PART_READERS as readonly string[]).includes(name));
      }
      for (const [who, arn] of Object.entries({ ...OUTSIDERS, deploy: DEPLOY_ROLE })) {
        expect(deniedBy(statements, { principalArn: arn, action, resource: part }), `${who} ${action}`).not.toEqual([]);
      }
    }
    // What the others legitimately do under parts/ stays allowed by the bucket policy.
    expect(deniedBy(statements, { principalArn: roleArn('api'), action: 's3:PutObject', resource: object('parts/e1/ids/selection-000000.json') })).toEqual([]);
    for (const name of ['api', 'dlq'] as const) {
      expect(deniedBy(statements, { principalArn: roleArn(name), action: 's3:DeleteObject', resource: part }), name).toEqual([]);
      expect(deniedBy(statements, { principalArn: roleArn(name), action: 's3:ListBucket', resource: bucketArn() }), name).toEqual([]);
    }
    // CloudFormation (and an administrator) can still manage the bucket and this very policy.
    for (const arn of [DEPLOY_ROLE, OUTSIDERS.admin]) {
      for (const action of ['s3:PutBucketPolicy', 's3:DeleteBucketPolicy', 's3:GetBucketPolicy', 's3:PutLifecycleConfiguration', 's3:PutEncryptionConfiguration', 's3:DeleteBucket']) {
        expect(deniedBy(statements, { principalArn: arn, action, resource: bucketArn() }), `${arn} ${action}`).toEqual([]);
      }
    }
  });

  it('evaluated: only the api role reads a finished file; the finalizer and dlq still write and delete them', () => {
    const statements = bucketStatements();
    const file = object('exports/ch1/e1/export.xlsx');
    for (const name of FUNCTION_NAMES) {
      const denied = deniedBy(statements, { principalArn: roleArn(name), action: 's3:GetObject', resource: file });
      expect(denied.length > 0, name).toBe(name !== 'api');
    }
    expect(deniedBy(statements, { principalArn: OUTSIDERS.admin, action: 's3:GetObject', resource: file })).not.toEqual([]);
    expect(deniedBy(statements, { principalArn: roleArn('finalizer'), action: 's3:PutObject', resource: file })).toEqual([]);
    expect(deniedBy(statements, { principalArn: roleArn('dlq'), action: 's3:DeleteObject', resource: file })).toEqual([]);
  });

  it('agrees with the identity policies: every role granted GetObject on a prefix is excepted from that prefix\'s deny', () => {
    const bucketId = idOf(stack, stack.bucket.bucket);
    const readers = (prefix: string) =>
      new Set(
        roleStatements(template)
          .filter(({ statement }) => statementAllows(statement, 's3:GetObject') && statementReaches(statement, bucketId))
          .filter(({ statement }) => list(statement.Resource as unknown).some((r) => render(r).endsWith(`/${prefix}*`)))
          .map(({ roleId: id }) => id),
      );
    expect(readers('parts/')).toEqual(new Set(PART_READERS.map(roleId)));
    expect(readers('exports/')).toEqual(new Set(FILE_READERS.map(roleId)));
  });
});

describe('bucket key policy: Decrypt only for the object readers, only through S3', () => {
  const keyStatements = () => resourcesOf(template, 'AWS::KMS::Key')[idOf(stack, stack.keys.bucketKey)]!.Properties!.KeyPolicy.Statement as Statement[];
  const viaS3 = { 'kms:ViaService': `s3.${REGION}.amazonaws.com`, 'kms:CallerAccount': ACCOUNT };
  const readers = () => [...new Set([...PART_READERS, ...FILE_READERS])];

  it('denies kms:Decrypt to every principal but the api, chunk and finalizer roles', () => {
    const deny = keyStatements().find((s) => s.Effect === 'Deny' && list(s.Action).length === 1 && actionCovers(list(s.Action)[0]!, 'kms:Decrypt'));
    expect(deny).toMatchObject({ Principal: { AWS: '*' }, Resource: '*' });
    expect(list(deny!.Condition?.ArnNotEquals?.['aws:PrincipalArn'] as unknown[]).map(render).sort()).toEqual(
      [roleArn('api'), roleArn('chunk'), roleArn('finalizer')].sort(),
    );
    expect(readers().sort()).toEqual(['api', 'chunk', 'finalizer']);
  });

  it('allows the readers Decrypt and GenerateDataKey through S3 of this account', () => {
    const allow = keyStatements().find((s) => s.Effect === 'Allow' && s.Condition?.StringEquals?.['kms:ViaService'] !== undefined);
    expect(allow).toBeDefined();
    expect(list(allow!.Action)).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:GenerateDataKey']));
    expect(list(allow!.Condition?.ArnEquals?.['aws:PrincipalArn'] as unknown[]).map(render).sort()).toEqual(readers().map(roleArn).sort());
    expect(render(allow!.Condition!.StringEquals!['kms:ViaService'])).toBe(`s3.${REGION}.amazonaws.com`);
    expect(render(allow!.Condition!.StringEquals!['kms:CallerAccount'])).toBe(ACCOUNT);
  });

  it('evaluated: the readers decrypt through S3 only; every other identity, however privileged, cannot decrypt at all', () => {
    const statements = keyStatements().filter((s) => !render((s.Principal as { AWS?: unknown })?.AWS ?? '').endsWith(':root'));
    const all = keyStatements();
    for (const name of FUNCTION_NAMES) {
      const isReader = (readers() as string[]).includes(name);
      const throughS3 = { principalArn: roleArn(name), action: 'kms:Decrypt', resource: '*', context: viaS3 };
      expect(deniedBy(all, throughS3).length === 0, `${name} via S3`).toBe(isReader);
      if (isReader) expect(allowedBy(statements, throughS3).length, name).toBeGreaterThan(0);
      // Directly (no kms:ViaService): denied even to the readers.
      expect(deniedBy(all, { principalArn: roleArn(name), action: 'kms:Decrypt', resource: '*' }), `${name} direct`).toContain('OnlyThroughS3');
    }
    for (const [who, arn] of Object.entries(OUTSIDERS)) {
      expect(deniedBy(all, { principalArn: arn, action: 'kms:Decrypt', resource: '*', context: viaS3 }), who).not.toEqual([]);
    }
    // Writing through S3 stays possible for the writers, never directly.
    expect(deniedBy(all, { principalArn: roleArn('chunk'), action: 'kms:GenerateDataKey', resource: '*', context: viaS3 })).toEqual([]);
    for (const action of ['kms:GenerateDataKey', 'kms:Encrypt', 'kms:ReEncryptFrom', 'kms:GenerateDataKeyWithoutPlaintext']) {
      expect(deniedBy(all, { principalArn: roleArn('finalizer'), action, resource: '*' }), action).toContain('OnlyThroughS3');
    }
  });

  it('never locks out key administration: the account keeps kms:* and no deny names an administrative action', () => {
    const all = keyStatements();
    expect(all).toContainEqual(
      expect.objectContaining({ Effect: 'Allow', Action: 'kms:*', Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':root']] } } }),
    );
    const adminActions = ['kms:PutKeyPolicy', 'kms:GetKeyPolicy', 'kms:DescribeKey', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion', 'kms:EnableKeyRotation', 'kms:DisableKey', 'kms:EnableKey', 'kms:TagResource', 'kms:CreateAlias'];
    for (const arn of [OUTSIDERS.root, OUTSIDERS.admin, DEPLOY_ROLE]) {
      for (const action of adminActions) {
        expect(deniedBy(all, { principalArn: arn, action, resource: '*' }), `${arn} ${action}`).toEqual([]);
        expect(allowedBy(all, { principalArn: arn, action, resource: '*' }).length, `${arn} ${action}`).toBeGreaterThan(0);
      }
    }
  });

  it('agrees with the identity policies: the roles granted Decrypt on the bucket key are exactly the excepted readers', () => {
    const bucketKeyId = idOf(stack, stack.keys.bucketKey);
    const granted = new Set(
      roleStatements(template)
        .filter(({ statement }) => statementAllows(statement, 'kms:Decrypt') && statementReaches(statement, bucketKeyId))
        .map(({ roleId: id }) => id),
    );
    expect(granted).toEqual(new Set(readers().map(roleId)));
  });
});

// ---------------------------------------------------------------------------------------------
// The subset of WAF statements the web ACL uses, evaluated as WAF does.
// ---------------------------------------------------------------------------------------------
type WafStatement = {
  ByteMatchStatement?: {
    FieldToMatch: { Method?: object; UriPath?: object };
    PositionalConstraint: 'EXACTLY' | 'CONTAINS' | 'STARTS_WITH' | 'ENDS_WITH';
    SearchString: string;
    TextTransformations: { Priority: number; Type: string }[];
  };
  AndStatement?: { Statements: WafStatement[] };
  OrStatement?: { Statements: WafStatement[] };
  NotStatement?: { Statement: WafStatement };
};

function transform(text: string, type: string): string {
  switch (type) {
    case 'NONE':
      return text;
    case 'LOWERCASE':
      return text.toLowerCase();
    case 'URL_DECODE':
      return text.replace(/%([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    case 'NORMALIZE_PATH': {
      const out: string[] = [];
      for (const segment of text.replace(/\/{2,}/g, '/').split('/')) {
        if (segment === '.') continue;
        if (segment === '..') out.pop();
        else out.push(segment);
      }
      return out.join('/');
    }
    default:
      throw new Error(`text transformation ${type} not modelled`);
  }
}

function wafMatches(statement: WafStatement, request: { method: string; path: string }): boolean {
  if (statement.AndStatement) return statement.AndStatement.Statements.every((s) => wafMatches(s, request));
  if (statement.OrStatement) return statement.OrStatement.Statements.some((s) => wafMatches(s, request));
  if (statement.NotStatement) return !wafMatches(statement.NotStatement.Statement, request);
  const byte = statement.ByteMatchStatement;
  if (!byte) throw new Error(`statement not modelled: ${JSON.stringify(statement)}`);
  let field = byte.FieldToMatch.Method ? request.method : byte.FieldToMatch.UriPath ? request.path : undefined;
  if (field === undefined) throw new Error(`field not modelled: ${JSON.stringify(byte.FieldToMatch)}`);
  for (const t of [...byte.TextTransformations].sort((a, b) => a.Priority - b.Priority)) field = transform(field, t.Type);
  const search = byte.SearchString;
  switch (byte.PositionalConstraint) {
    case 'EXACTLY':
      return field === search;
    case 'CONTAINS':
      return field.includes(search);
    case 'STARTS_WITH':
      return field.startsWith(search);
    case 'ENDS_WITH':
      return field.endsWith(search);
  }
}
