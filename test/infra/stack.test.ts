import { existsSync, readFileSync } from 'node:fs';
import { CORS_ALLOWED_HEADERS, CORS_ALLOWED_METHODS, CORS_EXPOSED_HEADERS } from '../../shared/http/cors';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOTIFY_DELIVERY_BUDGET_MS, parseConfig } from '../../shared/config';
import { parseApiConfig } from '../../shared/config-api';
import { FUNCTION_NAMES, FUNCTION_SIZING, type ExportServiceStack, type FunctionName } from '../../infra/stack/export-service-stack';
import { DEFAULT_MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT_FACTOR } from '../../infra/stack/work-queue';
import { AUTHORIZED_ROUTES, PUBLIC_ROUTES } from '../../infra/stack/export-api';
import { routeTemplates } from '../../functions/api/router';
import { danglingReferences, findCycle } from './template-graph';
import { actionCovers, rolesAllowed, roleStatements, statementAllows, statementReaches, type Statement } from './iam-statements';
import { idOf, missingEntries, resourcesOf, synthStack, synthWithCli, TEST_CONTEXT, type CliSynth, type SynthResult } from './synth-stack';
import { DLQ_MESSAGES_ALARM_PERIODS, OLDEST_CHUNK_AGE_ALARM_SECONDS, OLDEST_FINALIZE_AGE_ALARM_SECONDS, OLDEST_NOTIFY_AGE_ALARM_SECONDS } from '../../infra/stack/service-alarms';
import { FOLLOW_UP_DELAY_SECONDS } from '../../shared/app/messages';
import { API_CLEANUP_FAILURE_MESSAGES, API_CLEANUP_FAILURES_METRIC, CONFIG_ERRORS_METRIC, INTERNAL_FAILURES_METRIC } from '../../shared/metric-names';
import { createPipelineDispatcher } from '../../shared/app/api/pipeline-dispatcher';
import { parseReceiveLimits, retryVisibilitySeconds } from '../../shared/adapters/aws/sqs-handler';
import { CLAIM_LEASE_MS } from '../../shared/ports/export-store';
import { REQUEST_MAX_SECONDS } from '../../shared/app/api/request-export';
import { exportsTableSpec, tableInput } from '../../infra/local/resources';
import { JOB_INDEX_NAME } from '../../shared/adapters/aws/export-table-layout';

const execFileAsync = promisify(execFile);

// Bundling is the slow part, so it happens once: `npx cdk synth` (the real CLI on cdk.json's app)
// bundles the real handlers, while the assertions run on an in-process synth of the same stack
// without bundling, which gives typed access to the constructs' logical ids.
let synth: SynthResult;
let cli: CliSynth;
let template: Template;
let stack: ExportServiceStack;

beforeAll(async () => {
  const cliRun = synthWithCli();
  synth = synthStack({ bundle: false });
  template = synth.template;
  stack = synth.stack;
  cli = await cliRun;
});
afterAll(() => {
  synth?.cleanup();
  cli?.cleanup();
});

const fnId = (name: FunctionName) => idOf(stack, stack.functions[name].fn);
const roleId = (name: FunctionName) => idOf(stack, stack.functions[name].fn.role!);
const fnProps = (name: FunctionName) => resourcesOf(template, 'AWS::Lambda::Function')[fnId(name)]!.Properties!;

describe('handlers and npx cdk synth', () => {
  it('synthesizes the real handler of every function (no stand-in entry)', () => {
    expect(missingEntries()).toEqual([]);
  });

  it('the template CloudFormation would deploy has no dependency cycle and no dangling reference', () => {
    const resources = cli.template.Resources;
    const parameters = Object.keys((cli.template as { Parameters?: object }).Parameters ?? {});
    expect(danglingReferences(resources, parameters)).toEqual([]);
    expect(findCycle(resources)).toEqual([]);
    // The checker itself finds a cycle when there is one.
    expect(findCycle({ A: { Properties: { X: { Ref: 'B' } } }, B: { Properties: { Y: { 'Fn::GetAtt': ['A', 'Arn'] } } } })).toEqual(['A', 'B', 'A']);
    expect(danglingReferences({ A: { Properties: { X: { 'Fn::Sub': '${Missing.Arn}/x' } } } })).toEqual(['A -> Missing']);
  });

  it('npx cdk synth produced the same resources and outputs as the stack under test', () => {
    // The API deployment's logical id hashes its inputs, bundle hashes included; skip only it.
    const ids = (resources: object) => Object.keys(resources).filter((id) => !id.startsWith('HttpApiDeployment') || id.includes('Stage')).sort();
    expect(ids(cli.template.Resources)).toEqual(ids(template.toJSON().Resources as object));
    expect(Object.keys(cli.template.Outputs).sort()).toEqual(Object.keys(template.toJSON().Outputs as object).sort());
  });
});

describe('resource counts', () => {
  it.each([
    ['AWS::Lambda::Function', 6],
    ['AWS::SQS::Queue', 6],
    ['AWS::DynamoDB::Table', 6],
    ['AWS::KMS::Key', 2],
    ['AWS::S3::Bucket', 1],
    ['AWS::SecretsManager::Secret', 3],
    ['AWS::Lambda::EventSourceMapping', 6],
    ['AWS::ApiGateway::RestApi', 1],
    ['AWS::ApiGateway::Authorizer', 1],
    ['AWS::ApiGateway::Model', 1],
    ['AWS::CloudWatch::Alarm', 23],
    ['AWS::SNS::Topic', 1],
    ['AWS::IAM::User', 0],
    ['AWS::WAFv2::WebACL', 1],
    ['AWS::WAFv2::WebACLAssociation', 1],
    // A usage plan limits only requests carrying one of its API keys, and no method requires one.
    ['AWS::ApiGateway::UsagePlan', 0],
  ])('%s x %i', (type, count) => {
    template.resourceCountIs(type, count);
  });
});

describe('ServiceFunction defaults', () => {
  it.each(FUNCTION_NAMES)('%s: nodejs22.x, arm64, tracing, source maps, JSON logs with retention', (name) => {
    const props = fnProps(name);
    expect(props.Runtime).toBe('nodejs22.x');
    expect(props.Architectures).toEqual(['arm64']);
    expect(props.TracingConfig).toEqual({ Mode: 'Active' });
    expect(props.Handler).toBe('index.handler');
    expect(props.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
    expect(props.MemorySize).toBe(FUNCTION_SIZING[name].memorySize);
    expect(props.Timeout).toBe(FUNCTION_SIZING[name].timeout.toSeconds());
    // A notify delivery's attempts fit the notifier's timeout, with time left for the job's reads and writes.
    if (name === 'notifier') expect(NOTIFY_DELIVERY_BUDGET_MS + 10_000).toBeLessThanOrEqual(FUNCTION_SIZING.notifier.timeout.toMilliseconds());
    const logGroupId = props.LoggingConfig.LogGroup.Ref as string;
    const logGroup = resourcesOf(template, 'AWS::Logs::LogGroup')[logGroupId];
    expect(logGroup?.Properties?.RetentionInDays).toBe(30);
  });

  it('the api function times out before REQUEST_MAX_SECONDS: a cooldown hold older than that without its export is a dead request\'s', () => {
    expect(FUNCTION_SIZING.api.timeout.toSeconds()).toBeLessThan(REQUEST_MAX_SECONDS);
  });

  it.each(FUNCTION_NAMES)('%s: bundled locally as ESM with the createRequire banner and a source map', (name) => {
    const dir = cli.assetDir(fnId(name));
    const code = readFileSync(path.join(dir, 'index.mjs'), 'utf8');
    expect(code.startsWith("import{createRequire as __esmCreateRequire}from'node:module';")).toBe(true);
    expect(existsSync(path.join(dir, 'index.mjs.map'))).toBe(true);
    expect(code).toMatch(/export\s*\{[^}]*\bhandler\b/);
  });

  it('every bundle loads as an ES module under node and exports handler', async () => {
    // Catches what only shows at cold start on Lambda: a CommonJS dependency calling require()
    // inside the ESM bundle, a top-level await on a missing variable, a bad import.
    const results = await Promise.all(
      FUNCTION_NAMES.map(async (name) => {
        const file = path.join(cli.assetDir(fnId(name)), 'index.mjs');
        const env = Object.fromEntries(
          Object.entries(fnProps(name).Environment.Variables as Record<string, unknown>).map(([k, v]) => [
            k,
            typeof v === 'string' ? v : 'https://resolved.example.com/ref',
          ]),
        );
        const script = "const m = await import(process.argv[1]); if (typeof m.handler !== 'function') { console.error('no handler export'); process.exit(3); }";
        try {
          await execFileAsync(process.execPath, ['--input-type=module', '-e', script, pathToFileURL(file).href], {
            env: { PATH: process.env.PATH, AWS_REGION: 'ap-northeast-2', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', ...env },
          });
          return `${name}: ok`;
        } catch (error) {
          return `${name}: ${(error as { stderr?: string }).stderr?.split('\n').slice(0, 5).join(' ') ?? String(error)}`;
        }
      }),
    );
    expect(results).toEqual(FUNCTION_NAMES.map((name) => `${name}: ok`));
  });

  it('the bundled authorizer verifies a real token against a JWKS and refuses a forged one', async () => {
    const pair = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const issuer = 'https://idp.example.test/';
      process.env.JWT_ISSUER = issuer;
      process.env.JWT_AUDIENCE = 'export-service';
      process.env.JWT_JWKS_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
      const file = path.join(cli.assetDir(fnId('authorizer')), 'index.mjs');
      const bundle = (await import(/* @vite-ignore */ pathToFileURL(file).href)) as {
        handler: (event: { type: 'TOKEN'; methodArn: string; authorizationToken: string }) => Promise<{ principalId: string; context: Record<string, unknown> }>;
      };
      const token = await new SignJWT({ channelId: 'ch-1', managerId: 'm-1', name: 'Lee', permissions: ['export:download'] })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(issuer)
        .setAudience('export-service')
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(pair.privateKey);
      const methodArn = 'arn:aws:execute-api:us-east-1:123456789012:api123/prod/POST/v1/exports';
      const result = await bundle.handler({ type: 'TOKEN', methodArn, authorizationToken: `Bearer ${token}` });
      expect(result.principalId).toBe('m-1');
      expect(result.context.permissions).toBe('["export:download"]');
      const forged = `${token.slice(0, -4)}AAAA`;
      await expect(bundle.handler({ type: 'TOKEN', methodArn, authorizationToken: `Bearer ${forged}` })).rejects.toThrow('Unauthorized');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('every pipeline function gets an environment that shared/config.ts accepts', () => {
    for (const name of FUNCTION_NAMES.filter((n) => n !== 'authorizer')) {
      const variables = fnProps(name).Environment.Variables as Record<string, unknown>;
      // CloudFormation fills the references at deploy time; any URL-shaped stand-in will do here.
      const resolved = Object.fromEntries(
        Object.entries(variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'https://resolved.example.com/ref']),
      );
      expect(() => parseConfig(resolved), name).not.toThrow();
      if (name === 'api') {
        // The api's own settings: on AWS it must verify against the JWKS, never a dev secret.
        const api = parseApiConfig(resolved, { devSecret: 'x'.repeat(32), devIssuer: 'dev', devAudience: 'dev' });
        expect(api.jwt).toEqual({ issuer: TEST_CONTEXT.jwtIssuer, audience: TEST_CONTEXT.jwtAudience, jwksUrl: TEST_CONTEXT.jwtJwksUrl });
        expect(variables.JWT_DEV_SECRET).toBeUndefined();
        expect(variables.ADMIN_ORIGIN).toBe(TEST_CONTEXT.adminOrigin);
        // Its own HMAC key, not the one derived from the link secret (which other roles read).
        expect(variables.API_HMAC_SECRET_ARN).toEqual({ Ref: idOf(stack, stack.secrets.apiHmac) });
        expect(api.API_HMAC_SECRET_ARN).toBeDefined();
      } else {
        expect(variables.API_HMAC_SECRET_ARN, name).toBeUndefined();
      }
      expect(variables.API_HMAC_SECRET, name).toBeUndefined();
      expect(variables.EXPORTS_TABLE).toEqual({ Ref: idOf(stack, stack.tables.exports) });
      expect(variables.AUDIT_TABLE).toEqual({ Ref: idOf(stack, stack.tables.audit) });
      expect(variables.KMS_KEY_ID).toEqual({ 'Fn::GetAtt': [idOf(stack, stack.keys.wrapKey), 'Arn'] });
      expect(variables.LINK_SIGNING_SECRET_ARN).toEqual({ Ref: idOf(stack, stack.secrets.linkSigning) });
      // The secrets themselves never appear in the template, only their ARNs.
      expect(variables.BOT_SIGNING_SECRET).toBeUndefined();
      expect(variables.LINK_SIGNING_SECRET).toBeUndefined();
      expect(JSON.stringify(variables.PUBLIC_BASE_URL)).toContain(idOf(stack, stack.api.restApi));
    }
  });

  it('the authorizer gets only the JWT settings', () => {
    expect(Object.keys(fnProps('authorizer').Environment.Variables).sort()).toEqual(['JWT_AUDIENCE', 'JWT_ISSUER', 'JWT_JWKS_URL', 'NODE_OPTIONS']);
    expect(fnProps('authorizer').Environment.Variables.JWT_JWKS_URL).toBe(TEST_CONTEXT.jwtJwksUrl);
  });
});

describe('queues', () => {
  const queues = () => resourcesOf(template, 'AWS::SQS::Queue');
  const mappings = () => Object.values(resourcesOf(template, 'AWS::Lambda::EventSourceMapping')).map((r) => r.Properties!);

  it('every mapping: visibility timeout >= 6x the consumer timeout, partial batch responses, max concurrency', () => {
    const functions = resourcesOf(template, 'AWS::Lambda::Function');
    expect(mappings()).toHaveLength(6);
    for (const mapping of mappings()) {
      const queueId = mapping.EventSourceArn['Fn::GetAtt'][0] as string;
      const functionId = mapping.FunctionName.Ref as string;
      const visibility = queues()[queueId]!.Properties!.VisibilityTimeout as number;
      const timeout = functions[functionId]!.Properties!.Timeout as number;
      expect(visibility, `${queueId} -> ${functionId}`).toBeGreaterThanOrEqual(VISIBILITY_TIMEOUT_FACTOR * timeout);
      // SQS refuses a visibility timeout over 12 hours: the deploy, not synth, would fail.
      expect(visibility, queueId).toBeLessThanOrEqual(12 * 60 * 60);
      expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
      expect(mapping.ScalingConfig.MaximumConcurrency).toBeGreaterThanOrEqual(2);
    }
  });

  it('the chunk function has the Lambda maximum (a case day, up to 1,000,000 rows, is one chunk) and its queue 6x that', () => {
    expect(fnProps('chunk').Timeout).toBe(15 * 60);
    expect(queues()[idOf(stack, stack.queues.chunk.queue)]!.Properties!.VisibilityTimeout).toBe(90 * 60);
  });

  it('each work queue has a DLQ with a redrive of 5 receives (AWS asks at least 5: a throttled invoke counts as one), and its consumer is the right function', () => {
    const expected: [keyof ExportServiceStack['queues'], FunctionName][] = [
      ['chunk', 'chunk'],
      ['finalize', 'finalizer'],
      ['notify', 'notifier'],
    ];
    for (const [queueName, consumer] of expected) {
      const work = stack.queues[queueName];
      const props = queues()[idOf(stack, work.queue)]!.Properties!;
      expect(props.RedrivePolicy.deadLetterTargetArn).toEqual({ 'Fn::GetAtt': [idOf(stack, work.deadLetterQueue), 'Arn'] });
      expect(props.RedrivePolicy.maxReceiveCount, queueName).toBe(5);
      expect(work.maxReceiveCount, queueName).toBe(DEFAULT_MAX_RECEIVE_COUNT);
      const consumers = mappings()
        .filter((m) => m.EventSourceArn['Fn::GetAtt'][0] === idOf(stack, work.queue))
        .map((m) => m.FunctionName.Ref);
      expect(consumers).toEqual([fnId(consumer)]);
      // The DLQ consumer drains every DLQ.
      const dlqConsumers = mappings()
        .filter((m) => m.EventSourceArn['Fn::GetAtt'][0] === idOf(stack, work.deadLetterQueue))
        .map((m) => m.FunctionName.Ref);
      expect(dlqConsumers).toEqual([fnId('dlq')]);
    }
  });

  it('every SQS-driven function knows each work queue\'s maxReceiveCount, from the redrive policy itself', () => {
    const redriveCount = (queue: keyof ExportServiceStack['queues']) =>
      queues()[idOf(stack, stack.queues[queue].queue)]!.Properties!.RedrivePolicy.maxReceiveCount as number;
    const expected = { chunk: redriveCount('chunk'), finalize: redriveCount('finalize'), notify: redriveCount('notify') };
    for (const name of ['chunk', 'finalizer', 'notifier', 'dlq'] as const) {
      const variables = fnProps(name).Environment.Variables as Record<string, string>;
      // The handler's last-receive rule (no retry delay when only the DLQ follows) needs these.
      expect(parseReceiveLimits(variables), name).toEqual(expected);
    }
  });

  it('with the stack\'s counts, a failing record dead-letters ~7.5 minutes after its first failure (docs/deploy.md), and a lease waiter outlives the lease', () => {
    const variables = fnProps('chunk').Environment.Variables as Record<string, unknown>;
    const resolved = Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, typeof v === 'string' ? v : 'https://resolved.example.com/ref']));
    const baseSeconds = parseConfig(resolved).RETRY_BASE_SECONDS;
    const lease = CLAIM_LEASE_MS / 1000;
    for (const [queue, maxReceiveCount] of Object.entries(parseReceiveLimits(resolved))) {
      const receives = Array.from({ length: maxReceiveCount }, (_, i) => i + 1);
      // 30 + 60 + 120 + 240 s, then none on the 5th (last) receive: only the DLQ follows it.
      const delays = receives.map((n) => retryVisibilitySeconds(n, { baseSeconds, maxReceiveCount }));
      expect(delays, queue).toEqual([30, 60, 120, 240, 0]);
      expect(delays.reduce((a, b) => a + b, 0), queue).toBe(450);
      // A delivery that only waited on a lease holder keeps its backoff on the last receive, and
      // its last receive comes after a dead holder's lease lapsed (so it takes the step over).
      const waiting = receives.map((n) => retryVisibilitySeconds(n, { baseSeconds, maxReceiveCount, waitingOnHolder: true, holderLeaseSeconds: lease }));
      expect(waiting, queue).toEqual([30, 60, 120, 240, 480]);
      expect(waiting.slice(0, -1).reduce((a, b) => a + b, 0), queue).toBeGreaterThan(lease);
    }
  });

  it('the mappings\' maximum concurrency adds up to 61 by default (the account concurrency check in docs/deploy.md)', () => {
    // Maximum concurrency caps a mapping but reserves nothing: these share the account's pool.
    const total = mappings().reduce((sum, m) => sum + (m.ScalingConfig.MaximumConcurrency as number), 0);
    expect(total).toBe(61);
  });

  it('the chunk mapping takes its concurrency from the context', () => {
    const chunkMapping = mappings().find((m) => m.EventSourceArn['Fn::GetAtt'][0] === idOf(stack, stack.queues.chunk.queue));
    expect(chunkMapping?.ScalingConfig.MaximumConcurrency).toBe(40);
    expect(chunkMapping?.BatchSize).toBe(1);
  });
});

describe('DynamoDB', () => {
  const tableProps = (table: keyof ExportServiceStack['tables']) =>
    resourcesOf(template, 'AWS::DynamoDB::Table')[idOf(stack, stack.tables[table] as never)]!;

  it('all tables are on-demand with pk (and sk where the pipeline uses one)', () => {
    for (const name of ['exports', 'audit', 'cases', 'users', 'workspace', 'cooldowns'] as const) {
      const props = tableProps(name).Properties!;
      expect(props.BillingMode, name).toBe('PAY_PER_REQUEST');
      const keys = props.KeySchema.map((k: { AttributeName: string; KeyType: string }) => `${k.AttributeName}:${k.KeyType}`);
      expect(keys, name).toEqual(name === 'cooldowns' ? ['pk:HASH'] : ['pk:HASH', 'sk:RANGE']);
    }
  });

  it('exports: gsi1 and TTL on ttl; cooldowns: TTL on ttl', () => {
    const exportsProps = tableProps('exports').Properties!;
    expect(exportsProps.TimeToLiveSpecification).toEqual({ AttributeName: 'ttl', Enabled: true });
    expect(exportsProps.GlobalSecondaryIndexes).toEqual([
      expect.objectContaining({
        IndexName: 'gsi1',
        KeySchema: [
          { AttributeName: 'gsi1pk', KeyType: 'HASH' },
          { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
        ],
      }),
    ]);
    expect(tableProps('cooldowns').Properties!.TimeToLiveSpecification).toEqual({ AttributeName: 'ttl', Enabled: true });
  });

  it('exports gsi1 projects keys only (no chunk write touches it; never changes as job fields are added), the local stack builds the same index, and the api may BatchGetItem the jobs', () => {
    // ALL copied the inline definition into the index on every chunk's write of the job item;
    // an INCLUDE list of job fields would have to change, and a deployed index cannot.
    const [index] = tableProps('exports').Properties!.GlobalSecondaryIndexes as { IndexName: string; Projection: { ProjectionType: string; NonKeyAttributes?: string[] } }[];
    expect(index!.Projection).toEqual({ ProjectionType: 'KEYS_ONLY' });
    const local = tableInput(exportsTableSpec('exports')).GlobalSecondaryIndexes![0]!;
    expect(local.Projection).toEqual({ ProjectionType: 'KEYS_ONLY' });
    // One name for the CDK table, the local table and the store's query (a change of index moves all three).
    expect(index!.IndexName).toBe(JOB_INDEX_NAME);
    expect(local.IndexName).toBe(JOB_INDEX_NAME);
    expect(tableInput({ ...exportsTableSpec('exports'), gsi1Name: 'gsi2' }).GlobalSecondaryIndexes![0]!.IndexName).toBe('gsi2');
    expect([...rolesAllowed(template, 'dynamodb:BatchGetItem', idOf(stack, stack.tables.exports))]).toEqual([roleId('api')]);
  });

  it('audit: gsi1, point-in-time recovery, deletion protection, retained', () => {
    const audit = tableProps('audit');
    expect(audit.Properties!.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(audit.Properties!.DeletionProtectionEnabled).toBe(true);
    expect(audit.DeletionPolicy).toBe('Retain');
    expect(audit.UpdateReplacePolicy).toBe('Retain');
    expect(audit.Properties!.GlobalSecondaryIndexes.map((i: { IndexName: string }) => i.IndexName)).toEqual(['gsi1']);
  });
});

describe('S3', () => {
  const bucket = () => resourcesOf(template, 'AWS::S3::Bucket')[idOf(stack, stack.bucket.bucket)]!.Properties!;

  it('blocks public access, uses SSE-KMS with the bucket key (not the wrap key)', () => {
    expect(bucket().PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket().BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: {
          SSEAlgorithm: 'aws:kms',
          KMSMasterKeyID: { 'Fn::GetAtt': [idOf(stack, stack.keys.bucketKey), 'Arn'] },
        },
      },
    ]);
  });

  it('denies requests without TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('lifecycle: parts/ after 1 day, exports/ after the link window + 1 day, multipart uploads aborted after 1 day', () => {
    const rules = bucket().LifecycleConfiguration.Rules as Record<string, unknown>[];
    expect(rules).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Prefix: 'parts/', ExpirationInDays: 1, Status: 'Enabled' }),
        expect.objectContaining({ Prefix: 'exports/', ExpirationInDays: 8, Status: 'Enabled' }),
        expect.objectContaining({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' }),
      ]),
    );
    const abortRule = rules.find((r) => r.AbortIncompleteMultipartUpload);
    expect(abortRule?.Prefix).toBeUndefined();
  });
});

describe('KMS and secrets', () => {
  it('both keys rotate', () => {
    for (const key of [stack.keys.wrapKey, stack.keys.bucketKey]) {
      expect(resourcesOf(template, 'AWS::KMS::Key')[idOf(stack, key)]!.Properties!.EnableKeyRotation).toBe(true);
    }
  });

  it('only the api role may wrap and only the finalizer role may unwrap with the wrap key (identity policies)', () => {
    const wrapKeyId = idOf(stack, stack.keys.wrapKey);
    for (const action of ['kms:Encrypt', 'kms:GenerateDataKey']) {
      const allowed = [...rolesAllowed(template, action, wrapKeyId)];
      expect(allowed, action).toEqual(action === 'kms:Encrypt' ? [roleId('api')] : []);
    }
    expect([...rolesAllowed(template, 'kms:Decrypt', wrapKeyId)]).toEqual([roleId('finalizer')]);
    expect([...rolesAllowed(template, 'kms:ReEncryptFrom', wrapKeyId)]).toEqual([]);
  });

  it('wrapping and unwrapping are allowed only with the exportId as the whole encryption context (what kms-key-wrapper.ts sends)', () => {
    const wrapKeyId = idOf(stack, stack.keys.wrapKey);
    const grants = roleStatements(template).filter(
      ({ statement }) => statement.Effect === 'Allow' && (statementAllows(statement, 'kms:Encrypt') || statementAllows(statement, 'kms:Decrypt')) && statementReaches(statement, wrapKeyId),
    );
    expect(grants.map((g) => g.roleId).sort()).toEqual([roleId('api'), roleId('finalizer')].sort());
    for (const { statement } of grants) {
      expect(statement.Condition).toEqual({
        'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['exportId'] },
        Null: { 'kms:EncryptionContextKeys': 'false' },
      });
    }
  });

  it('the wrap key policy denies use by anyone else, whatever their identity policies say', () => {
    const keyPolicy = resourcesOf(template, 'AWS::KMS::Key')[idOf(stack, stack.keys.wrapKey)]!.Properties!.KeyPolicy;
    const denies = (keyPolicy.Statement as Statement[]).filter((s) => s.Effect === 'Deny');
    const denyFor = (action: string) => denies.find((s) => [s.Action].flat().some((pattern) => actionCovers(String(pattern), action)));
    expect(denyFor('kms:Decrypt')?.Condition).toEqual({
      StringNotEquals: { 'aws:PrincipalArn': { 'Fn::GetAtt': [roleId('finalizer'), 'Arn'] } },
    });
    expect(denyFor('kms:Encrypt')?.Condition).toEqual({
      StringNotEquals: { 'aws:PrincipalArn': { 'Fn::GetAtt': [roleId('api'), 'Arn'] } },
    });
    expect(denyFor('kms:GenerateDataKey')).toBe(denyFor('kms:Encrypt'));
    expect(denyFor('kms:GenerateDataKeyWithoutPlaintext')).toBe(denyFor('kms:Encrypt'));
    expect(denyFor('kms:ReEncrypt*')?.Condition).toBeUndefined();
  });

  it('the bucket key is usable only through S3, by the functions that touch objects', () => {
    const bucketKeyId = idOf(stack, stack.keys.bucketKey);
    const users = roleStatements(template).filter(
      ({ statement }) => statementAllows(statement, 'kms:Decrypt') && statementReaches(statement, bucketKeyId),
    );
    expect(new Set(users.map((u) => u.roleId))).toEqual(new Set([roleId('api'), roleId('chunk'), roleId('finalizer')]));
    for (const { statement } of users) expect(statement.Condition?.StringEquals?.['kms:ViaService']).toBeDefined();
  });

  it('secrets: the bot key only for the notifier, the link key only for api, finalizer and notifier, the api HMAC key only for the api', () => {
    expect([...rolesAllowed(template, 'secretsmanager:GetSecretValue', idOf(stack, stack.secrets.botSigning))]).toEqual([roleId('notifier')]);
    expect(new Set(rolesAllowed(template, 'secretsmanager:GetSecretValue', idOf(stack, stack.secrets.linkSigning)))).toEqual(
      new Set([roleId('api'), roleId('finalizer'), roleId('notifier')]),
    );
    // Idempotency body hashes and list cursors: a role that reads the link key (finalizer,
    // notifier) must not be able to compute them. No other action on it either.
    const apiHmacId = idOf(stack, stack.secrets.apiHmac);
    expect([...rolesAllowed(template, 'secretsmanager:GetSecretValue', apiHmacId)]).toEqual([roleId('api')]);
    const reaching = roleStatements(template).filter(
      ({ statement }) => statement.Effect === 'Allow' && statementReaches(statement, apiHmacId) && JSON.stringify(statement.Action ?? statement.NotAction).includes('secretsmanager'),
    );
    expect(reaching.map(({ roleId: r, statement }) => [r, statement.Action])).toEqual([[roleId('api'), 'secretsmanager:GetSecretValue']]);
    for (const secret of Object.values(resourcesOf(template, 'AWS::SecretsManager::Secret'))) {
      expect(secret.Properties!.GenerateSecretString).toBeDefined();
      expect(secret.Properties!.SecretString).toBeUndefined();
    }
  });
});

describe('least privilege', () => {
  it('no statement lets any role update or delete audit entries', () => {
    const auditId = idOf(stack, stack.tables.audit);
    for (const action of ['dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem', 'dynamodb:DeleteTable', 'dynamodb:PartiQLUpdate', 'dynamodb:PartiQLDelete']) {
      expect([...rolesAllowed(template, action, auditId)], action).toEqual([]);
    }
    // Appending is allowed (PutItem; the adapter conditions it on attribute_not_exists): the api
    // records requests and downloads, the pipeline steps record failures and completions, the
    // notifier the bot's outcome (without it every notify would fail on AWS, never locally).
    expect(new Set(rolesAllowed(template, 'dynamodb:PutItem', auditId))).toEqual(
      new Set([roleId('api'), roleId('chunk'), roleId('finalizer'), roleId('notifier'), roleId('dlq')]),
    );
    // Reading the trail is the api's alone (GET /v1/audit).
    expect([...rolesAllowed(template, 'dynamodb:Query', auditId)]).toEqual([roleId('api')]);
  });

  /** Resources (as JSON) of the statements that let `name` do `action` on `table`. */
  const tableResources = (name: FunctionName, action: string, table: object) => {
    const tableId = idOf(stack, table as never);
    return roleStatements(template)
      .filter((s) => s.roleId === roleId(name) && statementAllows(s.statement, action) && statementReaches(s.statement, tableId))
      .flatMap((s) => [s.statement.Resource].flat().map((r) => JSON.stringify(r)));
  };

  it('least privilege on the tables: each role may do what its code sends, on the table or index it sends it to, nothing more', () => {
    // The api queries the exports table only through gsi1 (its list); it reads the workspace by key.
    expect(tableResources('api', 'dynamodb:Query', stack.tables.exports)).toEqual([expect.stringContaining('/index/gsi1"')]);
    // The audit list: by export on the table, by time on gsi1; no other index.
    const auditQueries = tableResources('api', 'dynamodb:Query', stack.tables.audit);
    expect(auditQueries).toHaveLength(2);
    expect(auditQueries.filter((r) => r.includes('/index/'))).toEqual([expect.stringContaining('/index/gsi1"')]);
    // No role queries the workspace table: every read of it is by key.
    expect([...rolesAllowed(template, 'dynamodb:Query', idOf(stack, stack.tables.workspace))]).toEqual([]);
    // The chunk: cases by Query only, users by Query or BatchGetItem, the workspace by GetItem.
    expect(tableResources('chunk', 'dynamodb:GetItem', stack.tables.cases)).toEqual([]);
    expect(tableResources('chunk', 'dynamodb:BatchGetItem', stack.tables.cases)).toEqual([]);
    expect(tableResources('chunk', 'dynamodb:GetItem', stack.tables.users)).toEqual([]);
    expect(tableResources('chunk', 'dynamodb:BatchGetItem', stack.tables.users)).toHaveLength(1);
    expect(tableResources('chunk', 'dynamodb:BatchGetItem', stack.tables.workspace)).toEqual([]);
    expect(tableResources('chunk', 'dynamodb:GetItem', stack.tables.workspace)).toHaveLength(1);
  });

  it('no wildcard actions on data services and no Scan anywhere', () => {
    for (const { statement } of roleStatements(template)) {
      const actions = [statement.Action].flat().filter(Boolean) as string[];
      for (const action of actions) {
        expect(action).not.toMatch(/^(dynamodb|s3|kms|sqs|secretsmanager):\*$|^\*$/);
        expect(action).not.toBe('dynamodb:Scan');
      }
    }
  });

  /** Resource strings (joined ARNs) of a role's statements that allow `action` on the bucket. */
  const bucketResources = (name: FunctionName, action: string) => {
    const bucketId = idOf(stack, stack.bucket.bucket);
    return roleStatements(template)
      .filter((s) => s.roleId === roleId(name) && statementAllows(s.statement, action) && statementReaches(s.statement, bucketId))
      .map((s) => JSON.stringify(s.statement.Resource));
  };

  it('chunk: reads the sources, writes parts/ only, never touches files or package keys', () => {
    const chunk = roleId('chunk');
    expect(bucketResources('chunk', 's3:PutObject')).toEqual([expect.stringContaining('/parts/*')]);
    expect(bucketResources('chunk', 's3:GetObject')).toEqual([expect.stringContaining('/parts/*')]);
    for (const table of [stack.tables.cases, stack.tables.users]) {
      expect(rolesAllowed(template, 'dynamodb:Query', idOf(stack, table)).has(chunk)).toBe(true);
      for (const write of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem']) {
        expect(rolesAllowed(template, write, idOf(stack, table)).size, write).toBe(0);
      }
    }
    expect(rolesAllowed(template, 'sqs:SendMessage', idOf(stack, stack.queues.finalize.queue)).has(chunk)).toBe(true);
  });

  it('finalizer: reads parts/, writes and cleans exports/ only, cannot read the source tables', () => {
    const finalizer = roleId('finalizer');
    expect(bucketResources('finalizer', 's3:PutObject')).toEqual([expect.stringContaining('/exports/*')]);
    expect(bucketResources('finalizer', 's3:GetObject')).toEqual([expect.stringContaining('/parts/*')]);
    for (const table of [stack.tables.cases, stack.tables.users]) {
      expect(rolesAllowed(template, 'dynamodb:Query', idOf(stack, table)).has(finalizer)).toBe(false);
    }
  });

  it('only the api (a revoked link\'s file), the finalizer and the dlq (a dead-lettered finalize\'s upload) may delete finished files; only api and chunk enqueue chunks', () => {
    const deleters = FUNCTION_NAMES.filter((name) => bucketResources(name, 's3:DeleteObject').some((r) => r.includes('/exports/*')));
    expect(deleters).toEqual(['api', 'finalizer', 'dlq']);
    // Deleting by prefix lists it first.
    for (const name of ['api', 'finalizer', 'dlq'] as const) {
      const lists = roleStatements(template)
        .filter((s) => s.roleId === roleId(name) && statementAllows(s.statement, 's3:ListBucket'))
        .map((s) => s.statement.Condition?.StringLike?.['s3:prefix']);
      expect(lists, name).toEqual(expect.arrayContaining([['exports/*']]));
    }
    // The bucket policy's denies on exports/ are about reads only: nothing there stops the api's delete.
    const bucketPolicies = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy'));
    const denies = bucketPolicies.flatMap((p) => (p.Properties?.PolicyDocument?.Statement ?? []) as { Effect: string; Action: unknown; Resource: unknown }[]).filter((st) => st.Effect === 'Deny');
    for (const deny of denies.filter((st) => JSON.stringify(st.Resource).includes('/exports/'))) {
      expect([deny.Action].flat(), JSON.stringify(deny)).not.toContain('s3:DeleteObject');
      expect([deny.Action].flat()).not.toContain('s3:*');
    }
    expect(new Set(rolesAllowed(template, 'sqs:SendMessage', idOf(stack, stack.queues.chunk.queue)))).toEqual(new Set([roleId('api'), roleId('chunk')]));
  });

  it('each SQS consumer may shorten the visibility of its own queue\'s records (retry backoff), and no other', () => {
    const consumers = { chunk: stack.queues.chunk.queue, finalizer: stack.queues.finalize.queue, notifier: stack.queues.notify.queue } as const;
    for (const [name, queue] of Object.entries(consumers)) {
      expect(rolesAllowed(template, 'sqs:ChangeMessageVisibility', idOf(stack, queue)), name).toEqual(new Set([roleId(name as keyof typeof consumers)]));
    }
  });

  it('cooldowns: the api takes and releases them; a failing pipeline step only releases (failExport)', () => {
    const cooldownsId = idOf(stack, stack.tables.cooldowns);
    expect([...rolesAllowed(template, 'dynamodb:PutItem', cooldownsId)]).toEqual([roleId('api')]);
    expect(new Set(rolesAllowed(template, 'dynamodb:DeleteItem', cooldownsId))).toEqual(
      new Set([roleId('api'), roleId('chunk'), roleId('finalizer'), roleId('dlq')]),
    );
  });

  it('every role that deletes an export\'s parts/ (the api on cancel, chunk, finalizer, dlq) may list and delete under parts/', () => {
    // deletePrefix lists the prefix, then deletes what it found: both grants, or the sweep fails
    // with AccessDenied (caught and logged on cancel, so only IAM can show it).
    for (const name of ['api', 'chunk', 'finalizer', 'dlq'] as const) {
      expect(bucketResources(name, 's3:DeleteObject'), name).toEqual(expect.arrayContaining([expect.stringContaining('/parts/*')]));
      const lists = roleStatements(template)
        .filter((s) => s.roleId === roleId(name) && statementAllows(s.statement, 's3:ListBucket'))
        .map((s) => s.statement.Condition?.StringLike?.['s3:prefix']);
      expect(lists, name).toEqual(expect.arrayContaining([['parts/*']]));
    }
  });

  it('ListBucket is limited to the prefixes the function cleans up', () => {
    for (const { statement } of roleStatements(template).filter((s) => statementAllows(s.statement, 's3:ListBucket'))) {
      expect(statement.Condition?.StringLike?.['s3:prefix']).toEqual([expect.stringMatching(/^(parts|exports)\/\*$/)]);
    }
  });

  it('roles carry no managed policy beyond basic Lambda logging', () => {
    for (const role of Object.values(resourcesOf(template, 'AWS::IAM::Role'))) {
      for (const arn of role.Properties?.ManagedPolicyArns ?? []) {
        expect(JSON.stringify(arn)).toMatch(/AWSLambdaBasicExecutionRole|AmazonAPIGatewayPushToCloudWatchLogs/);
      }
    }
  });
});

describe('REST API', () => {
  /** `METHOD /path` for every method, from the Resource tree in the template. */
  const routes = () => {
    const resources = resourcesOf(template, 'AWS::ApiGateway::Resource');
    const pathOf = (ref: unknown): string => {
      const id = (ref as { Ref?: string }).Ref;
      const resource = id ? resources[id] : undefined;
      if (!resource) return '';
      return `${pathOf(resource.Properties!.ParentId)}/${resource.Properties!.PathPart}`;
    };
    return Object.values(resourcesOf(template, 'AWS::ApiGateway::Method')).map((m) => ({
      route: `${m.Properties!.HttpMethod} ${pathOf(m.Properties!.ResourceId) || '/'}`,
      props: m.Properties!,
    }));
  };

  it('has the nine routes; every one but the download link (GET and HEAD) uses the bearer authorizer', () => {
    const authorizerId = Object.keys(resourcesOf(template, 'AWS::ApiGateway::Authorizer'))[0]!;
    const nonPreflight = routes().filter((r) => !r.route.startsWith('OPTIONS '));
    expect(nonPreflight.map((r) => r.route).sort()).toEqual(
      [
        'GET /v1/audit',
        'GET /v1/audit/exports/{exportId}/downloads',
        'GET /v1/downloads/{token}',
        'HEAD /v1/downloads/{token}',
        'GET /v1/exports',
        'GET /v1/exports/{id}',
        'POST /v1/exports',
        'POST /v1/exports/{id}/cancel',
        'POST /v1/exports/{id}/revoke',
      ].sort(),
    );
    // The exported lists the routes are documented by agree with what the template declares.
    expect([...AUTHORIZED_ROUTES, ...PUBLIC_ROUTES].sort()).toEqual(nonPreflight.map((r) => r.route).sort());
    // Every route the handler serves is declared (API Gateway refuses the others before the
    // handler sees them), and no other; parameter names may differ.
    const shape = (route: string) => route.replace(/\{\w+\}/g, '{}');
    expect(routeTemplates().map(shape).sort()).toEqual(nonPreflight.map((r) => shape(r.route)).sort());
    for (const { route, props } of nonPreflight) {
      if ((PUBLIC_ROUTES as readonly string[]).includes(route)) {
        expect(props.AuthorizationType, route).toBe('NONE');
        expect(props.AuthorizerId, route).toBeUndefined();
        expect(props.RequestParameters, route).toEqual({ 'method.request.path.token': true });
      } else {
        expect(props.AuthorizationType, route).toBe('CUSTOM');
        expect(props.AuthorizerId, route).toEqual({ Ref: authorizerId });
      }
      expect(props.Integration.Type, route).toBe('AWS_PROXY');
      expect(JSON.stringify(props.Integration.Uri), route).toContain(fnId('api'));
    }
  });

  it('the authorizer is a TOKEN authorizer on the Authorization header backed by the authorizer function', () => {
    template.hasResourceProperties('AWS::ApiGateway::Authorizer', {
      Type: 'TOKEN',
      IdentitySource: 'method.request.header.Authorization',
    });
    const authorizer = Object.values(resourcesOf(template, 'AWS::ApiGateway::Authorizer'))[0]!;
    expect(JSON.stringify(authorizer.Properties!.AuthorizerUri)).toContain(fnId('authorizer'));
  });

  it('POST /v1/exports validates the body against the generated model', () => {
    const post = routes().find((r) => r.route === 'POST /v1/exports')!;
    const modelId = Object.keys(resourcesOf(template, 'AWS::ApiGateway::Model'))[0]!;
    expect(post.props.RequestModels).toEqual({ 'application/json': { Ref: modelId } });
    const validatorId = post.props.RequestValidatorId.Ref as string;
    expect(resourcesOf(template, 'AWS::ApiGateway::RequestValidator')[validatorId]!.Properties!.ValidateRequestBody).toBe(true);
  });

  it('stage: throttled (a global ceiling; per-IP limits are the web ACL\'s), access logs as JSON without the raw path, no execution logs', () => {
    const stage = Object.values(resourcesOf(template, 'AWS::ApiGateway::Stage'))[0]!.Properties!;
    expect(stage.MethodSettings).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 }),
        expect.objectContaining({ HttpMethod: 'POST', ResourcePath: '/~1v1~1exports', ThrottlingRateLimit: 5 }),
      ]),
    );
    for (const setting of stage.MethodSettings) {
      expect(setting.LoggingLevel ?? 'OFF').toBe('OFF');
      expect(setting.DataTraceEnabled ?? false).toBe(false);
    }
    const format = JSON.parse(stage.AccessLogSetting.Format as string) as Record<string, string>;
    expect(format.resourcePath).toBe('$context.resourcePath');
    expect(Object.values(format)).not.toContain('$context.path');
    expect(JSON.stringify(stage.AccessLogSetting.DestinationArn)).toContain(idOf(stack, stack.api.accessLogs));
    // No usage plan (its quota and throttle would bind API keys only): no method asks for a key.
    template.resourceCountIs('AWS::ApiGateway::UsagePlan', 0);
    for (const { route, props } of routes()) expect(props.ApiKeyRequired ?? false, route).toBe(false);
  });

  it('CORS allows only the admin origin, on preflights and on API Gateway errors', () => {
    const preflights = routes().filter((r) => r.route.startsWith('OPTIONS '));
    expect(preflights.length).toBeGreaterThanOrEqual(6);
    for (const { props } of preflights) {
      expect(props.AuthorizationType).toBe('NONE');
      const headers = props.Integration.IntegrationResponses[0].ResponseParameters;
      expect(headers['method.response.header.Access-Control-Allow-Origin']).toBe(`'${TEST_CONTEXT.adminOrigin}'`);
      // The lists the local stack's preflights answer with too (shared/http/cors.ts).
      expect(headers['method.response.header.Access-Control-Allow-Methods']).toBe(`'${CORS_ALLOWED_METHODS.join(',')}'`);
      expect(headers['method.response.header.Access-Control-Allow-Headers']).toBe(`'${CORS_ALLOWED_HEADERS.join(',')}'`);
    }
    // A body the request model refuses: the handler's code (clients switch on one), and nothing
    // of API Gateway's validation text, which quotes the offending value (a password).
    const badBody = Object.values(resourcesOf(template, 'AWS::ApiGateway::GatewayResponse')).find((r) => r.Properties?.ResponseType === 'BAD_REQUEST_BODY');
    const body = JSON.parse(badBody?.Properties?.ResponseTemplates?.['application/json'] as string) as { error: Record<string, string> };
    expect(body.error).toMatchObject({ code: 'VALIDATION_FAILED', requestId: '$context.requestId' });
    expect(JSON.stringify(body)).not.toMatch(/\$context\.error\.(validationErrorString|message)/);
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'DEFAULT_4XX',
      ResponseParameters: { 'gatewayresponse.header.Access-Control-Allow-Origin': `'${TEST_CONTEXT.adminOrigin}'` },
    });
    // A body over the payload limit: 413 in the handler's envelope and code, as the local stack answers it.
    const tooLarge = Object.values(resourcesOf(template, 'AWS::ApiGateway::GatewayResponse')).find((r) => r.Properties?.ResponseType === 'REQUEST_TOO_LARGE');
    expect(tooLarge?.Properties).toMatchObject({ StatusCode: '413', ResponseParameters: { 'gatewayresponse.header.Access-Control-Allow-Origin': `'${TEST_CONTEXT.adminOrigin}'` } });
    const tooLargeBody = JSON.parse(tooLarge?.Properties?.ResponseTemplates?.['application/json'] as string) as { error: Record<string, string> };
    expect(tooLargeBody.error).toMatchObject({ code: 'BODY_TOO_LARGE', field: 'body', rule: 'max-bytes', requestId: '$context.requestId' });
    // API Gateway's own refusals answer in the same envelope and codes as the handler (they were
    // {"message":"Unauthorized"}, and an unknown path a 403 "Missing Authentication Token").
    const gatewayResponse = (type: string) => {
      const response = Object.values(resourcesOf(template, 'AWS::ApiGateway::GatewayResponse')).find((r) => r.Properties?.ResponseType === type)?.Properties;
      const error = (JSON.parse(response?.ResponseTemplates?.['application/json'] as string) as { error: Record<string, string> }).error;
      return { status: response?.StatusCode, headers: response?.ResponseParameters as Record<string, string>, error };
    };
    for (const [type, status, code] of [
      ['UNAUTHORIZED', '401', 'UNAUTHENTICATED'],
      ['ACCESS_DENIED', '403', 'PERMISSION_DENIED'],
      ['MISSING_AUTHENTICATION_TOKEN', '404', 'ROUTE_NOT_FOUND'],
      ['THROTTLED', '429', 'RATE_LIMITED'],
    ] as const) {
      const response = gatewayResponse(type);
      expect(response.status, type).toBe(status);
      expect(response.error, type).toMatchObject({ code, requestId: '$context.requestId' });
      expect(response.headers['gatewayresponse.header.Access-Control-Allow-Origin'], type).toBe(`'${TEST_CONTEXT.adminOrigin}'`);
      // Readable by the UI's script, as the handler's own answers are (Retry-After, WWW-Authenticate).
      expect(response.headers['gatewayresponse.header.Access-Control-Expose-Headers'], type).toBe(`'${CORS_EXPOSED_HEADERS}'`);
    }
    expect(CORS_EXPOSED_HEADERS.split(', ')).toEqual(expect.arrayContaining(['Retry-After', 'WWW-Authenticate']));
    expect(gatewayResponse('UNAUTHORIZED').headers['gatewayresponse.header.WWW-Authenticate']).toBe(`'Bearer realm="export-service"'`);
    expect(gatewayResponse('UNAUTHORIZED').error).toMatchObject({ field: 'Authorization', rule: 'bearer-token' });
    expect(gatewayResponse('THROTTLED').headers['gatewayresponse.header.Retry-After']).toBe("'1'");
  });
});

describe('alarms and outputs', () => {
  const alarms = () => Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm')).map((a) => a.Properties!);
  /** The alarms on one function's own AWS/Lambda metric. */
  const lambdaAlarms = (metric: string, name: FunctionName) =>
    alarms().filter((a) => a.Namespace === 'AWS/Lambda' && a.MetricName === metric && JSON.stringify(a.Dimensions) === JSON.stringify([{ Name: 'FunctionName', Value: { Ref: fnId(name) } }]));
  /** Any occurrence in five minutes (Sum > 0) alarms the topic; no data is no alarm. */
  const anyInFiveMinutes = (topicId: string) => ({
    Threshold: 0,
    ComparisonOperator: 'GreaterThanThreshold',
    Statistic: 'Sum',
    Period: 300,
    EvaluationPeriods: 1,
    TreatMissingData: 'notBreaching',
    AlarmActions: [{ Ref: topicId }],
  });

  it('every DLQ alarms when a message stays in it, by count (visible + in flight), not by age', () => {
    // SQS leaves messages received 3+ times out of ApproximateAgeOfOldestMessage: a dead letter
    // the consumer keeps failing (received every 3 minutes) drops out of it after 6 minutes.
    const topicId = idOf(stack, stack.alarms.topic);
    for (const work of Object.values(stack.queues)) {
      const dlqName = { 'Fn::GetAtt': [idOf(stack, work.deadLetterQueue), 'QueueName'] };
      const onDlq = alarms().filter((a) => JSON.stringify(a.Metrics ?? a.Dimensions ?? []).includes(JSON.stringify(dlqName)));
      expect(onDlq.map((a) => a.MetricName)).not.toContain('ApproximateAgeOfOldestMessage');
      expect(onDlq).toHaveLength(1);
      const alarm = onDlq[0]!;
      expect(alarm).toMatchObject({
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
        EvaluationPeriods: DLQ_MESSAGES_ALARM_PERIODS,
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topicId }],
      });
      // A dead letter handled in seconds shows in at most 2 periods of 5 minutes.
      expect(DLQ_MESSAGES_ALARM_PERIODS).toBeGreaterThanOrEqual(3);
      expect(alarm.DatapointsToAlarm ?? alarm.EvaluationPeriods).toBe(DLQ_MESSAGES_ALARM_PERIODS);
      type Query = { Id: string; Expression?: string; ReturnData?: boolean; MetricStat?: { Metric: { Namespace: string; MetricName: string; Dimensions: unknown[] }; Period: number; Stat: string } };
      const queries = alarm.Metrics as Query[];
      const expression = queries.find((q) => q.Expression !== undefined)!;
      expect(expression.ReturnData ?? true).toBe(true);
      const stats = queries.filter((q) => q.MetricStat);
      expect(stats.map((q) => q.MetricStat!.Metric.MetricName).sort()).toEqual(['ApproximateNumberOfMessagesNotVisible', 'ApproximateNumberOfMessagesVisible']);
      for (const q of stats) {
        expect(q.MetricStat).toEqual({ Metric: { Namespace: 'AWS/SQS', MetricName: q.MetricStat!.Metric.MetricName, Dimensions: [{ Name: 'QueueName', Value: dlqName }] }, Period: 300, Stat: 'Maximum' });
        expect(q.ReturnData).toBe(false);
      }
      expect(expression.Expression!.replace(/\s/g, '').split('+').sort()).toEqual(stats.map((q) => q.Id).sort());
    }
  });

  it('the DLQ consumer\'s own failed records alarm (a partial batch failure leaves its Errors at 0)', () => {
    const dlq = alarms().filter((a) => a.MetricName === 'recordFailures' && JSON.stringify(a.Dimensions).includes('{"Name":"function","Value":"dlq"}'));
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ Namespace: 'ExportService', Threshold: 0, Statistic: 'Sum', ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'notBreaching' });
    expect(dlq[0]!.Dimensions).toHaveLength(2);
    expect(dlq[0]!.Dimensions).toEqual(
      expect.arrayContaining([
        { Name: 'service', Value: 'export-service' },
        { Name: 'function', Value: 'dlq' },
      ]),
    );
  });

  it('the API\'s 5xx answers alarm (the handler\'s caught failures are no Lambda Errors, and an audit-table outage fails every download)', () => {
    const api = alarms().filter((a) => a.Namespace === 'AWS/ApiGateway' && a.MetricName === '5XXError');
    expect(api).toHaveLength(1);
    expect(api[0]).toMatchObject({
      Threshold: 0,
      Statistic: 'Sum',
      Period: 300,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: idOf(stack, stack.alarms.topic) }],
    });
    // The API's name is per stack: a second stack in the account must not share the metric.
    expect(api[0]!.Dimensions).toEqual([{ Name: 'ApiName', Value: `${stack.stackName}-api` }]);
    template.hasResourceProperties('AWS::ApiGateway::RestApi', { Name: `${stack.stackName}-api` });
  });

  it('the topic policy (written for enforceSSL, it replaces SNS\'s default) lets CloudWatch alarms of this account and region publish, over TLS only', () => {
    const topicId = idOf(stack, stack.alarms.topic);
    const policies = Object.values(resourcesOf(template, 'AWS::SNS::TopicPolicy')).filter((p) => JSON.stringify(p.Properties!.Topics) === JSON.stringify([{ Ref: topicId }]));
    expect(policies).toHaveLength(1);
    const statements = policies[0]!.Properties!.PolicyDocument.Statement as Statement[];
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
    const allow = statements.filter((st) => st.Effect === 'Allow');
    expect(allow).toEqual([
      {
        Sid: expect.any(String),
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: 'sns:Publish',
        Resource: { Ref: topicId },
        Condition: {
          StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
          ArnLike: {
            'aws:SourceArn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':cloudwatch:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':alarm:*']] },
          },
        },
      },
    ]);
  });

  it('alarmEmail subscribes the on-call address to the alarm topic; without it the topic has no subscriber', () => {
    // A refactor once dropped the subscription while deploy.md still told operators that
    // alarmEmail was all they needed: every alarm fired into a topic nobody read.
    const withEmail = synthStack({ bundle: false, context: { alarmEmail: 'oncall@example.com' } });
    try {
      const subscriptions = Object.values(resourcesOf(withEmail.template, 'AWS::SNS::Subscription'));
      expect(subscriptions.map((r) => r.Properties)).toEqual([
        { Protocol: 'email', Endpoint: 'oncall@example.com', TopicArn: { Ref: idOf(withEmail.stack, withEmail.stack.alarms.topic) } },
      ]);
    } finally {
      withEmail.cleanup();
    }
    expect(Object.values(resourcesOf(template, 'AWS::SNS::Subscription'))).toEqual([]);
  });

  it('finalizer errors and the age of the oldest chunk message alarm, all into the SNS topic', () => {
    const topicId = idOf(stack, stack.alarms.topic);
    // The handler's own count of failed records: a partial batch failure leaves Lambda's Errors at 0.
    const finalizer = alarms().find((a) => a.MetricName === 'recordFailures' && JSON.stringify(a.Dimensions).includes('"Value":"finalizer"'));
    expect(finalizer).toMatchObject({ Namespace: 'ExportService', Threshold: 0, Statistic: 'Sum' });
    expect(finalizer?.Dimensions).toEqual(
      expect.arrayContaining([
        { Name: 'service', Value: 'export-service' },
        { Name: 'function', Value: 'finalizer' },
      ]),
    );
    const chunkQueueId = idOf(stack, stack.queues.chunk.queue);
    const age = alarms().find((a) => a.MetricName === 'ApproximateAgeOfOldestMessage' && JSON.stringify(a.Dimensions).includes(`"${chunkQueueId}"`));
    expect(age).toMatchObject({ Threshold: OLDEST_CHUNK_AGE_ALARM_SECONDS, Statistic: 'Maximum', Period: 60, EvaluationPeriods: 3 });
    // A chunk message is counted in the age while its chunk runs (up to the 15-minute timeout).
    expect(OLDEST_CHUNK_AGE_ALARM_SECONDS).toBeGreaterThan(FUNCTION_SIZING.chunk.timeout.toSeconds());
    // The finalize and notify queues too (a throttled finalizer otherwise waited 90 minutes a
    // receive, hours before its dead letter alarmed), above a finalize's 15-minute run and the
    // follow-ups' 2-minute delay, and a bot's 15-minute Retry-After.
    for (const [queue, threshold] of [
      [stack.queues.finalize.queue, OLDEST_FINALIZE_AGE_ALARM_SECONDS],
      [stack.queues.notify.queue, OLDEST_NOTIFY_AGE_ALARM_SECONDS],
    ] as const) {
      const id = idOf(stack, queue);
      const alarm = alarms().find((a) => a.MetricName === 'ApproximateAgeOfOldestMessage' && JSON.stringify(a.Dimensions).includes(`"${id}"`));
      expect(alarm, id).toMatchObject({ Threshold: threshold, Statistic: 'Maximum', Period: 60, EvaluationPeriods: 3 });
    }
    expect(OLDEST_FINALIZE_AGE_ALARM_SECONDS).toBeGreaterThan(FUNCTION_SIZING.finalizer.timeout.toSeconds() + FOLLOW_UP_DELAY_SECONDS);
    expect(OLDEST_NOTIFY_AGE_ALARM_SECONDS).toBeGreaterThan(15 * 60);
    // Exports failed at once for the service's own fault (no retry, no dead letter): chunk and
    // finalizer counts of exportFailuresInternal, any in 5 minutes.
    const internal = alarms().find((a) => JSON.stringify(a.Metrics ?? []).includes(INTERNAL_FAILURES_METRIC));
    expect(internal).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1 });
    const read = (internal!.Metrics as Record<string, any>[]).filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric);
    expect(read).toEqual(
      ['chunk', 'finalizer'].map((fn) => ({
        Namespace: 'ExportService',
        MetricName: INTERNAL_FAILURES_METRIC,
        Dimensions: [
          { Name: 'function', Value: fn },
          { Name: 'service', Value: 'export-service' },
        ],
      })),
    );
    // A bad setting refuses every batch of a pipeline function: any of the four, in 5 minutes.
    const config = alarms().find((a) => JSON.stringify(a.Metrics ?? []).includes(CONFIG_ERRORS_METRIC));
    expect(config).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 1 });
    expect((config!.Metrics as Record<string, any>[]).filter((m) => m.MetricStat).map((m) => m.MetricStat.Metric)).toEqual(
      ['chunk', 'finalizer', 'notifier', 'dlq'].map((fn) => ({
        Namespace: 'ExportService',
        MetricName: CONFIG_ERRORS_METRIC,
        Dimensions: [
          { Name: 'function', Value: fn },
          { Name: 'service', Value: 'export-service' },
        ],
      })),
    );
    for (const alarm of alarms()) expect(alarm.AlarmActions).toEqual([{ Ref: topicId }]);
  });

  it('every alarm has a row in the runbook (docs/deploy.md), by its id or a `*` pattern the id fits', () => {
    const runbook = readFileSync(new URL('../../docs/deploy.md', import.meta.url), 'utf8').split('## When an alarm fires (runbook)')[1]!.split('\n## ')[0]!;
    const rows = runbook.split('\n').filter((line) => line.startsWith('| `'));
    const names = rows.flatMap((row) => [...(row.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
    const patterns = names.map((name) => new RegExp(`^${name.replace(/\*/g, '.*')}$`));
    const ids = stack.alarms.alarms.map((alarm) => alarm.node.id);
    expect(ids).toHaveLength(23);
    expect(ids.filter((id) => !patterns.some((p) => p.test(id)))).toEqual([]);
  });

  it("the api's failed best-effort clean-ups (its WARN lines) are counted by a metric filter on its log group and alarmed", async () => {
    const filters = Object.values(resourcesOf(template, 'AWS::Logs::MetricFilter')).map((r) => r.Properties!);
    const filter = filters.find((f) => JSON.stringify(f.MetricTransformations).includes(API_CLEANUP_FAILURES_METRIC));
    expect(filter).toBeDefined();
    expect(filter!.LogGroupName).toEqual({ Ref: idOf(stack, stack.functions.api.logGroup) });
    expect(filter!.FilterPattern).toBe(`{ ${API_CLEANUP_FAILURE_MESSAGES.map((g) => `($.message = "${g}")`).join(' || ')} }`);
    expect(filter!.MetricTransformations).toEqual([{ MetricNamespace: 'ExportService', MetricName: API_CLEANUP_FAILURES_METRIC, MetricValue: '1' }]);
    expect(alarms().find((a) => a.MetricName === API_CLEANUP_FAILURES_METRIC)).toMatchObject({ Namespace: 'ExportService', Threshold: 0, Statistic: 'Sum', Period: 300 });
    // The globs match the lines the api really writes (a renamed message would leave the filter counting nothing).
    const lines: string[] = [];
    const log = { info: () => undefined, error: () => undefined, warn: (message: string) => void lines.push(message) };
    const failing = { send: async () => Promise.reject(new Error('down')), sendMany: async () => Promise.reject(new Error('down')) };
    const objects = { deletePrefix: async () => Promise.reject(new Error('down')), list: async () => Promise.reject(new Error('down')) };
    const dispatcher = createPipelineDispatcher({ store: {} as never, objects: objects as never, queue: failing, workspace: {} as never, selectionBatch: 100, log });
    await dispatcher.scheduleFollowUp('revoke', { channelId: 'c', exportId: 'e' });
    await dispatcher.scheduleFollowUp('cancel', { channelId: 'c', exportId: 'e' });
    await dispatcher.discardFile({ channelId: 'c', exportId: 'e' });
    await dispatcher.discardParts({ exportId: 'e' });
    expect(lines).toHaveLength(4);
    const globs = API_CLEANUP_FAILURE_MESSAGES.map((g) => new RegExp(`^${g.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
    for (const line of lines) expect(globs.some((g) => g.test(line)), line).toBe(true);
  });

  it('every SQS-driven function alarms on its own Errors: an invocation killed by its timeout publishes no custom metric', () => {
    const topicId = idOf(stack, stack.alarms.topic);
    for (const name of ['chunk', 'finalizer', 'notifier', 'dlq'] as const) {
      const [alarm] = lambdaAlarms('Errors', name);
      expect(alarm, name).toMatchObject(anyInFiveMinutes(topicId));
    }
  });

  it('every SQS-driven function alarms on any Throttles: a throttled receive counts toward the DLQ and waits out the visibility timeout', () => {
    const topicId = idOf(stack, stack.alarms.topic);
    for (const name of ['chunk', 'finalizer', 'notifier', 'dlq'] as const) {
      const onFunction = lambdaAlarms('Throttles', name);
      expect(onFunction, name).toHaveLength(1);
      // Sum > 0: one throttle in 5 minutes is enough.
      expect(onFunction[0], name).toMatchObject(anyInFiveMinutes(topicId));
    }
    // Only those four, the functions whose throttles cost receives.
    expect(alarms().filter((a) => a.MetricName === 'Throttles')).toHaveLength(4);
  });

  it('a bot that refuses events for good (acknowledged, so no DLQ and no error count) alarms on the notifier\'s own metric', () => {
    const refused = alarms().find((a) => a.MetricName === 'botNotificationsRefused');
    expect(refused).toMatchObject({ Namespace: 'ExportService', Threshold: 0, Statistic: 'Sum', ComparisonOperator: 'GreaterThanThreshold' });
    expect(refused?.Dimensions).toEqual(
      expect.arrayContaining([
        { Name: 'service', Value: 'export-service' },
        { Name: 'function', Value: 'notifier' },
      ]),
    );
  });

  it('outputs the API URL, the bucket, every table name and the queues the runbook sends to', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    for (const name of ['ApiUrl', 'BucketName', 'ExportsTable', 'CooldownsTable', 'AuditTable', 'CasesTable', 'UsersTable', 'WorkspaceTable', 'NotifyQueueUrl', 'FinalizeQueueUrl']) {
      expect(Object.keys(outputs)).toContain(name);
    }
    // Each URL is its queue's (a Ref to an SQS queue is its URL), not another one's.
    const queueOf = (output: string) => (outputs[output]?.Value as { Ref: string }).Ref;
    const queues = template.findResources('AWS::SQS::Queue');
    expect(queues[queueOf('NotifyQueueUrl')]).toBeDefined();
    expect(queueOf('NotifyQueueUrl')).toMatch(/^NotifyQueue/);
    expect(queueOf('FinalizeQueueUrl')).toMatch(/^FinalizeQueue/);
  });
});
