import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpBotWebhook } from '../../shared/adapters/aws/http-bot-webhook';

/** A bot endpoint that redirects, and a second host that records whatever reaches it. */
let server: http.Server;
let base: string;
const received: { method: string; path: string; body: string; signature?: string }[] = [];
let endlessClosed = false;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      received.push({ method: req.method ?? '', path: req.url ?? '', body, ...(req.headers['x-signature'] ? { signature: String(req.headers['x-signature']) } : {}) });
      if (req.url === '/moved') res.writeHead(301, { location: '/moved/' }).end();
      else if (req.url === '/temporary') res.writeHead(307, { location: '/elsewhere' }).end();
      // A rate-limited or busy bot that echoes what it got (link included) in its answer.
      else if (req.url === '/busy') res.writeHead(429, { 'retry-after': '120' }).end(`too many: ${body}`);
      else if (req.url === '/unavailable') res.writeHead(503, { 'retry-after': 'Wed, 21 Oct 2099 07:28:00 GMT' }).end(body);
      else if (req.url === '/refused') res.writeHead(400).end(`bad request: ${body}`);
      else if (req.url === '/endless') {
        // A hostile bot: answers 200 and then streams for ever.
        res.writeHead(200);
        const chunk = Buffer.alloc(1 << 20, 0x61);
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        res.on('close', () => (endlessClosed = true));
        pump();
      }
      else res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('HttpBotWebhook', () => {
  it('posts the body once and reports a redirect as the 3xx it is, without following it', async () => {
    received.length = 0;
    expect(await new HttpBotWebhook(`${base}/moved`).post('{"link":"x"}', { 'X-Signature': 'sha256=abc' })).toEqual({ status: 301 });
    expect(await new HttpBotWebhook(`${base}/temporary`).post('{"link":"x"}', { 'X-Signature': 'sha256=abc' })).toEqual({ status: 307 });
    // Before, a 301 became an empty GET answered 200 (counted as delivered), and a 307 re-posted
    // the signed body to wherever Location pointed.
    expect(received.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /moved', 'POST /temporary']);
    expect(await new HttpBotWebhook(`${base}/hook`).post('{"link":"x"}', {})).toEqual({ status: 200 });
  });

  it('passes Retry-After on to the notifier as sent, and never the body', async () => {
    const body = '{"link":"https://api.example.com/v1/downloads/secret-token"}';
    // Before: { status: 429 } alone, so the notifier could not tell when to come back.
    expect(await new HttpBotWebhook(`${base}/busy`).post(body, {})).toEqual({ status: 429, retryAfter: '120' });
    expect(await new HttpBotWebhook(`${base}/unavailable`).post(body, {})).toEqual({ status: 503, retryAfter: 'Wed, 21 Oct 2099 07:28:00 GMT' });
    expect(await new HttpBotWebhook(`${base}/refused`).post(body, {})).toEqual({ status: 400 });
  });

  it('does not read an answer that never ends: the status comes back and the connection is dropped', async () => {
    const before = process.memoryUsage().rss;
    // Before: the whole body was read until the 10 s timeout (hundreds of MB), then it threw.
    expect(await new HttpBotWebhook(`${base}/endless`, 60_000).post('{}', {})).toEqual({ status: 200 });
    await expect.poll(() => endlessClosed, { timeout: 10_000 }).toBe(true);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
  });
});
