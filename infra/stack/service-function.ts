import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';

export type ServiceFunctionProps = {
  /** Path of the TypeScript entry that exports `handler` (absolute, or relative to the project root). */
  entry: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  environment?: Record<string, string>;
  logRetention: logs.RetentionDays;
  /** Folder holding package-lock.json; the default walks up from the entry. */
  projectRoot?: string;
};

/**
 * The one way this stack builds a Lambda, so every function gets the same runtime, architecture,
 * bundling, logging and tracing instead of copy-pasted NodejsFunction blocks that drift.
 */
export class ServiceFunction extends Construct {
  readonly fn: NodejsFunction;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    // An explicit log group (instead of the deprecated logRetention custom resource) so the
    // retention is a plain property of the template and the group is deleted with the stack.
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.fn = new NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      // Graviton: about 20% cheaper per GB-second than x86 and our code has no native modules.
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      ...(props.projectRoot ? { projectRoot: props.projectRoot, depsLockFilePath: `${props.projectRoot}/package-lock.json` } : {}),
      environment: {
        // Stack traces point at the TypeScript sources instead of the minified bundle.
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        // Offline synth: esbuild from node_modules, never a Docker image.
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        target: 'node22',
        minify: true,
        sourceMap: true,
        // The map only needs positions; the sources would double the zip for no runtime use.
        sourcesContent: false,
        // Prefer the ESM builds of dependencies (jose, zod, the SDK) so tree shaking works.
        mainFields: ['module', 'main'],
        // Bundle the AWS SDK too: the versions the tests ran against, not whatever the runtime
        // ships (lib-storage and the presigner are not guaranteed to be in it).
        externalModules: [],
        // CommonJS dependencies inside an ESM bundle still call require(); give them one.
        banner: "import{createRequire as __esmCreateRequire}from'node:module';const require=__esmCreateRequire(import.meta.url);",
      },
    });
  }
}
