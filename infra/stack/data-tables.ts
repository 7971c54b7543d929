import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { JOB_INDEX_NAME, JOB_INDEX_PROJECTION } from '../../shared/adapters/aws/export-table-layout';

const S = dynamodb.AttributeType.STRING;

/**
 * Every table the service uses, with the keys of docs/contracts.md. All on-demand: exports come in
 * bursts (a 1M-row job is ~100 chunk workers for a minute, then nothing), which provisioned
 * capacity would either throttle or pay for while idle.
 */
export class DataTables extends Construct {
  /** Jobs, chunk-completion items, idempotency keys and download tokens. */
  readonly exports: dynamodb.Table;
  readonly cooldowns: dynamodb.Table;
  /** Append-only audit trail of export requests and downloads. */
  readonly audit: dynamodb.Table;
  /** Source data the exports read (in production these belong to the workspace product). */
  readonly cases: dynamodb.Table;
  readonly users: dynamodb.Table;
  readonly workspace: dynamodb.Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const common = {
      partitionKey: { name: 'pk', type: S },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    } as const;

    this.exports = new dynamodb.Table(this, 'Exports', {
      ...common,
      sortKey: { name: 'sk', type: S },
      // Jobs, chunk items and tokens carry an expiry; TTL collects them so the table stays small.
      timeToLiveAttribute: 'ttl',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.exports.addGlobalSecondaryIndex({
      indexName: JOB_INDEX_NAME,
      partitionKey: { name: 'gsi1pk', type: S },
      sortKey: { name: 'gsi1sk', type: S },
      // Keys only: no chunk's write of the job item writes the index (export-table-layout.ts).
      projectionType: dynamodb.ProjectionType[JOB_INDEX_PROJECTION],
    });

    // The cooldown acquire is a conditional write on the stored expiry; TTL only deletes garbage
    // (lazily, hours later), so correctness never depends on it.
    this.cooldowns = new dynamodb.Table(this, 'Cooldowns', {
      ...common,
      timeToLiveAttribute: 'ttl',
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.audit = new dynamodb.Table(this, 'Audit', {
      ...common,
      sortKey: { name: 'sk', type: S },
      // The audit trail is evidence: restorable to any second of the last 35 days, undeletable by
      // a stray `cdk destroy` or console click.
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.audit.addGlobalSecondaryIndex({
      indexName: 'gsi1',
      partitionKey: { name: 'gsi1pk', type: S },
      sortKey: { name: 'gsi1sk', type: S },
    });

    this.cases = new dynamodb.Table(this, 'Cases', { ...common, sortKey: { name: 'sk', type: S }, removalPolicy: RemovalPolicy.RETAIN });
    this.users = new dynamodb.Table(this, 'Users', { ...common, sortKey: { name: 'sk', type: S }, removalPolicy: RemovalPolicy.RETAIN });
    this.workspace = new dynamodb.Table(this, 'Workspace', { ...common, sortKey: { name: 'sk', type: S }, removalPolicy: RemovalPolicy.RETAIN });
  }
}
