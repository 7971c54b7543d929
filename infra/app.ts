import { App } from 'aws-cdk-lib';
import { ExportServiceStack } from './stack/export-service-stack';
import { parseStackConfig, stackConfigSchema } from './stack/stack-config';
import { exportRequestJsonSchema } from '../shared/domain/export-request';

const app = new App();
// Context from cdk.json, overridable with `npx cdk deploy -c key=value`.
const context = Object.fromEntries(Object.keys(stackConfigSchema.shape).map((key) => [key, app.node.tryGetContext(key)]).filter(([, v]) => v !== undefined));
const config = parseStackConfig(context);

new ExportServiceStack(app, app.node.tryGetContext('stackName') ?? 'ExportService', {
  config,
  exportRequestSchema: exportRequestJsonSchema() as Record<string, unknown>,
  // Environment-agnostic on purpose: synth works offline, and `cdk deploy` targets the account
  // and region of the caller's credentials (CDK_DEFAULT_ACCOUNT/REGION).
  description: 'export-service: password-protected XLSX exports with an audit trail',
});
app.synth();
