import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { App, CfnElement } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { Template } from 'aws-cdk-lib/assertions';
import { exportRequestJsonSchema } from '../../shared/domain/export-request';
import {
  DEFAULT_ENTRIES,
  ExportServiceStack,
  FUNCTION_NAMES,
  PROJECT_ROOT,
  type FunctionName,
} from '../../infra/stack/export-service-stack';
import { parseStackConfig } from '../../infra/stack/stack-config';

const execFileAsync = promisify(execFile);

/** Same values as cdk.json's context, so the CLI's template and the in-process one agree. */
export const TEST_CONTEXT = {
  adminOrigin: 'https://admin.example.com',
  jwtIssuer: 'https://auth.example.com/',
  jwtAudience: 'export-service',
  jwtJwksUrl: 'https://auth.example.com/.well-known/jwks.json',
  botWebhookUrl: 'https://bot.example.com/hooks/export',
} as const;

const FIXTURE_ENTRY = 'test/infra/fixtures/handler.ts';

/** Real entries that are missing on disk; the stack test fails while this is not empty. */
export function missingEntries(): FunctionName[] {
  return FUNCTION_NAMES.filter((name) => !existsSync(path.join(PROJECT_ROOT, DEFAULT_ENTRIES[name])));
}

export type SynthResult = {
  stack: ExportServiceStack;
  template: Template;
  /** Cloud assembly folder (bundled assets live here); removed by cleanup(). */
  outdir: string;
  cleanup: () => void;
};

/**
 * Synthesizes the stack the way `cdk synth` does, into a temp folder. `bundle: false` skips
 * esbuild (CDK's own switch) for tests that only read the template.
 */
export function synthStack(options: { bundle: boolean; context?: Record<string, unknown> }): SynthResult {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'export-service-cdk-'));
  const app = new App({
    outdir,
    context: options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] },
  });
  // Until a handler lands, its function bundles a stand-in so the rest of the stack can be tested;
  // missingEntries() makes the suite fail for as long as that is the case.
  const entries = Object.fromEntries(missingEntries().map((name) => [name, FIXTURE_ENTRY]));
  const stack = new ExportServiceStack(app, 'ExportService', {
    config: parseStackConfig({ ...TEST_CONTEXT, ...options.context }),
    exportRequestSchema: exportRequestJsonSchema(),
    entries,
  });
  const template = Template.fromStack(stack);
  return { stack, template, outdir, cleanup: () => rmSync(outdir, { recursive: true, force: true }) };
}

export type CliSynth = {
  outdir: string;
  /** The template `npx cdk synth` wrote for the app of cdk.json. */
  template: { Resources: Record<string, Resource>; Outputs: Record<string, unknown> };
  /** Folder of a function's bundle in the cloud assembly, from its Code.S3Key (the asset hash). */
  assetDir: (functionLogicalId: string) => string;
  cleanup: () => void;
};

/**
 * Runs the project's own `cdk` binary on cdk.json's app, as a user would: offline, no account,
 * no Docker, esbuild bundling of the real handlers. The project CLI must be able to read the
 * cloud assembly aws-cdk-lib writes (CLI 3.0.0 fails with a schema version mismatch).
 */
export async function synthWithCli(): Promise<CliSynth> {
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'export-service-cli-'));
  const cli = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'cdk');
  // No profile: synth must not need credentials.
  const { AWS_PROFILE: _profile, ...inherited } = process.env;
  const env: NodeJS.ProcessEnv = { ...inherited, CDK_DISABLE_VERSION_CHECK: '1', CDK_DISABLE_CLI_TELEMETRY: 'true' };
  await execFileAsync(cli, ['synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', outdir], {
    cwd: PROJECT_ROOT,
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  const template = JSON.parse(readFileSync(path.join(outdir, 'ExportService.template.json'), 'utf8')) as CliSynth['template'];
  const assetDir = (functionLogicalId: string) => {
    const s3Key = template.Resources[functionLogicalId]?.Properties?.Code?.S3Key as string | undefined;
    if (!s3Key) throw new Error(`no bundled code for ${functionLogicalId}`);
    return path.join(outdir, `asset.${s3Key.replace(/\.zip$/, '')}`);
  };
  return { outdir, template, assetDir, cleanup: () => rmSync(outdir, { recursive: true, force: true }) };
}

export type Resource = { Type: string; Properties?: Record<string, any>; Metadata?: Record<string, any>; DeletionPolicy?: string; UpdateReplacePolicy?: string };

export function resourcesOf(template: Template, type: string): Record<string, Resource> {
  return template.findResources(type) as Record<string, Resource>;
}

/** Logical id of a construct's CloudFormation resource (its default child for L2 constructs). */
export function idOf(stack: ExportServiceStack, construct: IConstruct): string {
  const element = construct instanceof CfnElement ? construct : construct.node.defaultChild;
  if (!(element instanceof CfnElement)) throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return stack.getLogicalId(element);
}
