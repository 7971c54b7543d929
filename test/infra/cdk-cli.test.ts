import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/stack/export-service-stack';

const execFileAsync = promisify(execFile);
const outdir = mkdtempSync(path.join(os.tmpdir(), 'export-service-cli-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('npx cdk synth', () => {
  it('synthesizes the app of cdk.json offline with the project CLI (no account, no Docker)', async () => {
    // The project's own CLI binary: it must be able to read the cloud assembly aws-cdk-lib writes
    // (an older CLI fails here with "Cloud assembly schema version mismatch").
    const cli = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'cdk');
    // No profile: synth must not need credentials.
    const { AWS_PROFILE: _profile, ...inherited } = process.env;
    const env: NodeJS.ProcessEnv = { ...inherited, CDK_DISABLE_VERSION_CHECK: '1', CDK_DISABLE_CLI_TELEMETRY: 'true' };
    const { stdout } = await execFileAsync(cli, ['synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', outdir], {
      cwd: PROJECT_ROOT,
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(stdout).not.toMatch(/schema version mismatch/i);
    const template = JSON.parse(readFileSync(path.join(outdir, 'ExportService.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string }>;
      Outputs: Record<string, unknown>;
    };
    const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(functions).toHaveLength(6);
    expect(Object.keys(template.Outputs)).toEqual(expect.arrayContaining(['ApiUrl', 'BucketName', 'AuditTable']));
  });
});
