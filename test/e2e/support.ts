import { signDevToken } from '../../shared/auth';
import type { LocalStack } from '../../infra/local/stack';

export type HttpResult = { status: number; headers: Headers; body: any };

export async function http(
  stack: LocalStack,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['Content-Type'] ??= 'application/json';
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers,
    redirect: 'manual',
    ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body };
}

export function managerToken(channelId: string, managerId: string, permissions = ['export:download'], now?: Date, expiresIn = '1h'): Promise<string> {
  return signDevToken({ channelId, managerId, name: `매니저 ${managerId}`, permissions, expiresIn }, now ? { now } : {});
}

export async function waitUntil<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Polls GET /v1/exports/{id} until the export is terminal. */
export async function waitForExport(stack: LocalStack, token: string, exportId: string): Promise<any> {
  return waitUntil(async () => {
    const res = await http(stack, 'GET', `/v1/exports/${exportId}`, { token });
    if (res.status !== 200) throw new Error(`GET export: ${res.status} ${JSON.stringify(res.body)}`);
    return ['completed', 'failed', 'canceled', 'expired'].includes(res.body.status) ? res.body : undefined;
  }, `export ${exportId}`);
}

/** The bot message for an export, from the local bot's inbox (over HTTP, like a person would). */
export async function inboxMessage(stack: LocalStack, exportId: string): Promise<any> {
  return waitUntil(async () => {
    const res = await http(stack, 'GET', '/v1/dev/inbox');
    const items = (res.body?.items ?? []) as { body: { exportId?: string } }[];
    return items.find((m) => m.body?.exportId === exportId);
  }, `bot message for ${exportId}`);
}

/** Follows a bot link: the API answers 302 to a presigned URL, which serves the file. */
export async function downloadThroughLink(stack: LocalStack, link: string, headers: Record<string, string> = {}): Promise<{ redirect: HttpResult; bytes: Buffer }> {
  const path = new URL(link).pathname;
  const redirect = await http(stack, 'GET', path, { headers });
  if (redirect.status !== 302) throw new Error(`download link answered ${redirect.status}: ${JSON.stringify(redirect.body)}`);
  const location = redirect.headers.get('location') ?? '';
  const file = await fetch(location);
  if (file.status !== 200) throw new Error(`presigned URL answered ${file.status}`);
  return { redirect, bytes: Buffer.from(await file.arrayBuffer()) };
}

export { decryptAndRead, type Sheets } from '../support/read-export';
