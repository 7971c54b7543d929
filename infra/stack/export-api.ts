import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { CORS_ALLOWED_HEADERS, CORS_ALLOWED_METHODS, CORS_EXPOSED_HEADERS, CORS_MAX_AGE_SECONDS } from '../../shared/http/cors';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { BEARER_HEADER_PATTERN } from '../../shared/auth/bearer';
import { bodyTooLarge, MAX_REQUEST_BODY_BYTES } from '../../shared/http/limits';

export type ExportApiProps = {
  /** The api function: every route is a Lambda proxy integration to it. */
  handler: lambda.IFunction;
  /** TOKEN authorizer that verifies the bearer JWT. */
  authorizerHandler: lambda.IFunction;
  /** JSON Schema (draft-04) of the POST /v1/exports body, generated from the zod schema. */
  exportRequestSchema: Record<string, unknown>;
  adminOrigin: string;
  stageName: string;
  throttleRateLimit: number;
  throttleBurstLimit: number;
  logRetention: logs.RetentionDays;
};

/** Routes that carry the bearer authorizer, as `METHOD /path`. */
export const AUTHORIZED_ROUTES = [
  'POST /v1/exports',
  'GET /v1/exports',
  'GET /v1/exports/{id}',
  'POST /v1/exports/{id}/cancel',
  'POST /v1/exports/{id}/revoke',
  'GET /v1/audit',
  'GET /v1/audit/exports/{exportId}/downloads',
] as const;
/**
 * The download link: its token is the credential, so no bearer token is asked for. HEAD too:
 * link checkers and chat previews probe links with it, and read the gateway's 403 for a method
 * without a route as a broken link.
 */
export const PUBLIC_ROUTES = ['GET /v1/downloads/{token}', 'HEAD /v1/downloads/{token}'] as const;

/**
 * Creating an export derives a password key (100,000 SHA-512 rounds) and plans a job: far more
 * expensive than a read, so it gets a tighter limit than the stage default. Like the stage's, it
 * is one budget for everyone (applied before the authorizer): a ceiling that protects the backend,
 * not a per-tenant limit. Per-client limits are the web ACL's (api-firewall.ts), which turns a
 * flood from one address away before it counts here.
 */
const CREATE_EXPORT_RATE = { rateLimit: 5, burstLimit: 10 };

/** The REST API: routes, bearer authorizer, request model, throttling, CORS and access logs. */
export class ExportApi extends Construct {
  readonly restApi: apigw.RestApi;
  readonly requestModel: apigw.Model;
  readonly accessLogs: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ExportApiProps) {
    super(scope, id);
    this.accessLogs = new logs.LogGroup(this, 'AccessLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const cors: apigw.CorsOptions = {
      allowOrigins: [props.adminOrigin],
      allowMethods: [...CORS_ALLOWED_METHODS],
      allowHeaders: [...CORS_ALLOWED_HEADERS],
      maxAge: Duration.seconds(CORS_MAX_AGE_SECONDS),
    };
    this.restApi = new apigw.RestApi(this, 'Api', {
      // Per stack: API Gateway's metrics (the 5xx alarm's) are keyed by this name alone, so a
      // staging and a production stack in one account and region must not share it. A rename is
      // an in-place update.
      restApiName: `${Stack.of(this).stackName}-api`,
      description: 'Password-protected XLSX exports with an audit trail',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      // Access logging needs the account-level CloudWatch role; the stack sets it (a no-op when
      // the account already has one) and keeps it on delete, since other APIs may rely on it.
      cloudWatchRole: true,
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
      defaultCorsPreflightOptions: cors,
      deployOptions: {
        stageName: props.stageName,
        metricsEnabled: true,
        // No execution logging or stage tracing: both record the full request path, and the
        // download path carries the link token, which is a credential.
        // Global ceilings (shared by all callers); per-IP limits are in the web ACL.
        throttlingRateLimit: props.throttleRateLimit,
        throttlingBurstLimit: props.throttleBurstLimit,
        methodOptions: {
          '/v1/exports/POST': { throttlingRateLimit: CREATE_EXPORT_RATE.rateLimit, throttlingBurstLimit: CREATE_EXPORT_RATE.burstLimit },
        },
        accessLogDestination: new apigw.LogGroupLogDestination(this.accessLogs),
        accessLogFormat: apigw.AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            requestTime: '$context.requestTime',
            ip: '$context.identity.sourceIp',
            userAgent: '$context.identity.userAgent',
            httpMethod: '$context.httpMethod',
            // The route template, never $context.path: /v1/downloads/{token} must not log the token.
            resourcePath: '$context.resourcePath',
            status: '$context.status',
            responseLength: '$context.responseLength',
            latencyMs: '$context.responseLatency',
            integrationLatencyMs: '$context.integrationLatency',
            managerId: '$context.authorizer.managerId',
            channelId: '$context.authorizer.channelId',
            error: '$context.error.message',
          }),
        ),
      },
    });

    // CORS headers on API Gateway's own errors too (authorizer denials, validation failures,
    // throttling), or the browser hides the status from the admin UI.
    // Exposed as the handler's are: the throttle's Retry-After and the 401's WWW-Authenticate are
    // unreadable to the UI's script otherwise.
    const corsHeaders = { 'Access-Control-Allow-Origin': `'${props.adminOrigin}'`, 'Access-Control-Expose-Headers': `'${CORS_EXPOSED_HEADERS}'`, Vary: "'Origin'" };
    this.restApi.addGatewayResponse('Default4xx', { type: apigw.ResponseType.DEFAULT_4XX, responseHeaders: corsHeaders });
    this.restApi.addGatewayResponse('Default5xx', { type: apigw.ResponseType.DEFAULT_5XX, responseHeaders: corsHeaders });
    // API Gateway's validation text quotes the offending value, which for a bad password would
    // echo the password; the body keeps the error class and points at the published schema.
    this.restApi.addGatewayResponse('BadRequestBody', {
      type: apigw.ResponseType.BAD_REQUEST_BODY,
      statusCode: '400',
      responseHeaders: corsHeaders,
      templates: {
        'application/json': JSON.stringify({
          // The handler's code for the same refusal, so clients switch on one code; no field (the
          // gateway does not say which, except in the text it must not echo).
          error: { code: 'VALIDATION_FAILED', message: 'the request body does not match the ExportRequest schema (see the API documentation)', requestId: '$context.requestId' },
        }),
      },
    });

    // API Gateway's own answers in the handler's envelope and codes, so a client switches on one
    // code wherever the refusal is made (by default they are {"message":"Unauthorized"} and co.,
    // and an unknown path is a 403 "Missing Authentication Token"). The authorizer refuses a
    // token by throwing 'Unauthorized' (the 401), and the stage throttle answers 429.
    const envelope = (code: string, message: string, where: { field?: string; rule?: string } = {}) => ({
      'application/json': JSON.stringify({ error: { code, message, ...where, requestId: '$context.requestId' } }),
    });
    this.restApi.addGatewayResponse('Unauthorized', {
      type: apigw.ResponseType.UNAUTHORIZED,
      statusCode: '401',
      // RFC 6750: say which scheme; no error detail (the authorizer does not tell which check failed).
      responseHeaders: { ...corsHeaders, 'WWW-Authenticate': `'Bearer realm="export-service"'` },
      templates: envelope('UNAUTHENTICATED', 'a valid bearer token is required (Authorization: Bearer <token>)', { field: 'Authorization', rule: 'bearer-token' }),
    });
    this.restApi.addGatewayResponse('AccessDenied', {
      type: apigw.ResponseType.ACCESS_DENIED,
      statusCode: '403',
      responseHeaders: corsHeaders,
      templates: envelope('PERMISSION_DENIED', 'this token may not call this route', { field: 'Authorization', rule: 'route-access' }),
    });
    this.restApi.addGatewayResponse('MissingAuthenticationToken', {
      type: apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
      statusCode: '404',
      responseHeaders: corsHeaders,
      templates: envelope('ROUTE_NOT_FOUND', 'no route for this method here; see docs/api.md for the routes', { field: 'method', rule: 'known-route' }),
    });
    this.restApi.addGatewayResponse('Throttled', {
      type: apigw.ResponseType.THROTTLED,
      statusCode: '429',
      responseHeaders: { ...corsHeaders, 'Retry-After': "'1'" },
      templates: envelope('RATE_LIMITED', 'too many requests to the service; retry after a second'),
    });

    // A body over the gateway's 10 MB payload limit (one without a Content-Length the web ACL
    // could judge) never reaches the handler: answered in the handler's envelope and code.
    this.restApi.addGatewayResponse('RequestTooLarge', {
      type: apigw.ResponseType.REQUEST_TOO_LARGE,
      statusCode: '413',
      responseHeaders: corsHeaders,
      templates: {
        'application/json': JSON.stringify({
          error: { ...bodyTooLarge(MAX_REQUEST_BODY_BYTES), requestId: '$context.requestId' },
        }),
      },
    });

    const authorizer = new apigw.TokenAuthorizer(this, 'BearerAuthorizer', {
      handler: props.authorizerHandler,
      identitySource: apigw.IdentitySource.header('Authorization'),
      // Rejects obvious garbage at the edge without invoking (and paying for) the authorizer.
      // The same header grammar the api's own verifier accepts (verify-token.ts): the scheme in
      // any case (RFC 7235), one or more spaces, trailing whitespace; stricter here, a client that
      // works against the local stack would get 401 on AWS.
      validationRegex: BEARER_HEADER_PATTERN,
      // Results are cached per token for every route (the policy allows the whole stage; per-route
      // permissions are the api handler's job), so a page of polling costs one verification.
      resultsCacheTtl: Duration.minutes(5),
    });

    this.requestModel = this.restApi.addModel('ExportRequestModel', {
      modelName: 'ExportRequest',
      contentType: 'application/json',
      description: 'Generated from the zod exportRequestSchema (shared/domain/export-request.ts)',
      // CDK's JsonSchema type is a camel-cased mirror of draft-04; the generated schema already
      // uses the wire names ($schema, $ref), which CDK's mapper passes through unchanged.
      schema: props.exportRequestSchema as apigw.JsonSchema,
    });
    const bodyValidator = this.restApi.addRequestValidator('BodyValidator', {
      requestValidatorName: 'body-and-parameters',
      validateRequestBody: true,
      validateRequestParameters: true,
    });

    // One invoke permission for the whole API instead of one per method: same reach, fewer resources.
    const integration = new apigw.LambdaIntegration(props.handler, { proxy: true, scopePermissionToMethod: false });
    const withAuth: apigw.MethodOptions = { authorizer, authorizationType: apigw.AuthorizationType.CUSTOM };

    const v1 = this.restApi.root.addResource('v1');
    const exportsResource = v1.addResource('exports');
    exportsResource.addMethod('POST', integration, {
      ...withAuth,
      requestValidator: bodyValidator,
      requestModels: { 'application/json': this.requestModel },
    });
    exportsResource.addMethod('GET', integration, withAuth);
    const oneExport = exportsResource.addResource('{id}');
    oneExport.addMethod('GET', integration, withAuth);
    oneExport.addResource('cancel').addMethod('POST', integration, withAuth);
    // Withdraws a completed export's link. Its small JSON body ({ reason }) is checked by the
    // handler, as cancel's path is: no model here (the handler's refusal names the field and rule).
    oneExport.addResource('revoke').addMethod('POST', integration, withAuth);
    const audit = v1.addResource('audit');
    audit.addMethod('GET', integration, withAuth);
    // Every use of one export's link, paged (the audit entry lists only the most recent 100).
    audit.addResource('exports').addResource('{exportId}').addResource('downloads').addMethod('GET', integration, withAuth);
    const downloadLink = v1.addResource('downloads').addResource('{token}');
    const publicLink: apigw.MethodOptions = {
      authorizationType: apigw.AuthorizationType.NONE,
      requestValidator: bodyValidator,
      requestParameters: { 'method.request.path.token': true },
    };
    downloadLink.addMethod('GET', integration, publicLink);
    // The handler answers HEAD without presigning or auditing (nothing is downloaded).
    downloadLink.addMethod('HEAD', integration, publicLink);

    // No usage plan: a usage plan's throttle and quota apply only to requests that carry an API
    // key of the plan, and no method here requires one (apiKeyRequired), so a plan (there was one,
    // with a 10,000-a-day quota) limited nothing while reading like a daily cap. Per-client limits
    // are the web ACL's (api-firewall.ts). A partner integration given API keys later needs
    // apiKeyRequired on its methods and a plan of its own.
  }

  /** Base URL of the stage, built from the API id so functions can hold it without a cycle. */
  stageBaseUrl(stageName: string): string {
    const stack = this.restApi.stack;
    return `https://${this.restApi.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}/${stageName}`;
  }
}
