import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { CreateTableCommand, DynamoDBClient, type CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { tableInput } from '../../../infra/local/resources';

export type LocalDynamo = { doc: DynamoDBDocumentClient; raw: DynamoDBClient; stop(): Promise<void> };

/** An in-memory dynalite on a free port, for adapter integration tests. */
export async function startDynalite(tables: CreateTableCommandInput[]): Promise<LocalDynamo> {
  // Typed here rather than relying on a declaration file elsewhere in the tree.
  const { default: dynalite } = (await import('dynalite' as string)) as { default: (opts: object) => Server };
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const raw = new DynamoDBClient({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  for (const table of tables) await raw.send(new CreateTableCommand(table));
  const doc = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
  return {
    doc,
    raw,
    async stop() {
      raw.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// The same key schemas the local stack (and the CDK stack) create.
export const cooldownTable = (name: string): CreateTableCommandInput => tableInput({ name, sortKey: false, gsi1: false });
export const auditTable = (name: string): CreateTableCommandInput => tableInput({ name, sortKey: true, gsi1: true });
