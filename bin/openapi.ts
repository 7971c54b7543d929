/**
 * Writes docs/openapi.json, the OpenAPI 3.1 description of the HTTP API, from
 * functions/api/openapi.ts (which takes the request body's schema from the zod schema the
 * handler parses with). test/api/openapi.test.ts fails while the committed file differs.
 *   npm run openapi              write docs/openapi.json
 *   npm run openapi -- --stdout  print it instead
 * Exit codes: 0 done, 2 bad usage (as the other bin commands), 1 other failures.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { buildOpenApiDocument, serializeOpenApiDocument } from '../functions/api/openapi';
import { InputError, parseOptions } from './cli-input';

const usage = 'usage: npm run openapi [-- --stdout]';

/** The committed file, relative to this script (not to the caller's folder). */
const OPENAPI_JSON_PATH = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));

async function main(): Promise<void> {
  const values = parseOptions({ stdout: { type: 'boolean' }, help: { type: 'boolean' } }, usage);
  if (values.help) {
    console.log(usage);
    return;
  }
  const text = serializeOpenApiDocument(buildOpenApiDocument());
  if (values.stdout) {
    process.stdout.write(text);
    return;
  }
  await writeFile(OPENAPI_JSON_PATH, text, 'utf8');
  console.error(`wrote ${OPENAPI_JSON_PATH} (${Buffer.byteLength(text)} bytes)`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(error instanceof InputError ? 2 : 1);
});
