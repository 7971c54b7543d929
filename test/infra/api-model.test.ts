import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportRequestJsonSchema } from '../../shared/domain/export-request';
import { PROJECT_ROOT } from '../../infra/stack/export-service-stack';
import { resourcesOf, synthStack, type SynthResult } from './synth-stack';

// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule) as typeof addFormatsModule;

let synth: SynthResult;
let modelSchema: Record<string, unknown>;

beforeAll(() => {
  // Only the template matters here: skip esbuild.
  synth = synthStack({ bundle: false });
  const models = Object.values(resourcesOf(synth.template, 'AWS::ApiGateway::Model'));
  expect(models).toHaveLength(1);
  expect(models[0]!.Properties!.ContentType).toBe('application/json');
  modelSchema = models[0]!.Properties!.Schema as Record<string, unknown>;
});
afterAll(() => synth?.cleanup());

/** Keywords whose meaning differs between draft-04 (API Gateway) and draft-07 (ajv 8's default). */
function draft04OnlyKeywords(schema: unknown, found: string[] = [], at = '#'): string[] {
  if (Array.isArray(schema)) schema.forEach((s, i) => draft04OnlyKeywords(s, found, `${at}/${i}`));
  else if (schema && typeof schema === 'object') {
    for (const [key, value] of Object.entries(schema)) {
      if ((key === 'exclusiveMinimum' || key === 'exclusiveMaximum') && typeof value === 'boolean') found.push(`${at}/${key}`);
      if (key === 'id' && typeof value === 'string') found.push(`${at}/${key}`);
      if (key === '$ref') found.push(`${at}/${key}`);
      draft04OnlyKeywords(value, found, `${at}/${key}`);
    }
  }
  return found;
}

let compiled: ReturnType<Ajv['compile']> | undefined;

/** Compiled once: the schema is large and ajv compilation is the slow part of this file. */
function compileModel() {
  if (compiled) return compiled;
  const { $schema, ...schema } = modelSchema;
  expect($schema).toBe('http://json-schema.org/draft-04/schema#');
  // Without ajv-draft-04 installed, ajv 8 validates with draft-07 semantics; that is exact only
  // because the generated schema uses no keyword whose meaning changed between the drafts.
  expect(draft04OnlyKeywords(schema)).toEqual([]);
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  compiled = ajv.compile(schema);
  return compiled;
}

const goodCases = {
  kind: 'cases',
  from: '2025-07-01',
  to: '2025-07-31',
  timezone: 'Asia/Seoul',
  reason: 'monthly support review',
  password: 'Quarter2025',
};
const goodContacts = { kind: 'contacts', scope: 'selection', userIds: ['u-1', 'u-2'], reason: 'campaign follow-up', password: 'pa$$w0rd!' };

describe('API Gateway request model for POST /v1/exports', () => {
  it('is the zod-generated schema, not a copy', () => {
    expect(modelSchema).toEqual({ $schema: 'http://json-schema.org/draft-04/schema#', ...exportRequestJsonSchema() });
  });

  it('accepts good bodies of both kinds', () => {
    const validate = compileModel();
    expect(validate(goodCases), JSON.stringify(validate.errors)).toBe(true);
    expect(validate(goodContacts), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each(['api-create-export-cases.json', 'api-create-export-contacts.json'])('accepts the body of the sample event %s', (file) => {
    const event = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'events', file), 'utf8')) as { body: string };
    const body = JSON.parse(event.body.replace('{{PASSWORD}}', 'Sample2025pw')) as unknown;
    const validate = compileModel();
    expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each([
    ['missing password', { ...goodCases, password: undefined }],
    ['missing reason', { ...goodCases, reason: undefined }],
    ['unknown kind', { ...goodCases, kind: 'tickets' }],
    ['not a calendar date', { ...goodCases, from: '2025-13-01' }],
    ['an unexpected property', { ...goodCases, admin: true }],
    ['contacts selection without ids', { ...goodContacts, userIds: [] }],
    ['password of the wrong type', { ...goodCases, password: 12345678 }],
  ])('rejects a body with %s', (_label, body) => {
    const validate = compileModel();
    const cleaned = JSON.parse(JSON.stringify(body)) as unknown;
    expect(validate(cleaned)).toBe(false);
  });
});
