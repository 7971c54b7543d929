import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export const PARTS_PREFIX = 'parts/';
export const EXPORTS_PREFIX = 'exports/';

export type ExportBucketProps = {
  encryptionKey: kms.IKey;
  /** Days a download link works; finished files are kept one day longer. */
  linkTtlDays: number;
};

/** Parts written by the chunk workers and the finished, password-protected files. */
export class ExportBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ExportBucketProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.encryptionKey,
      // One KMS call per bucket key period instead of per object: a 1M-row export writes ~100
      // parts and a multipart file, which would otherwise be hundreds of KMS requests.
      bucketKeyEnabled: true,
      // CloudFormation cannot delete a non-empty bucket; the lifecycle rules below empty it within
      // linkTtlDays + 1 days, after which it can be removed by hand. No auto-delete custom resource:
      // a stray `cdk destroy` must not wipe files whose links are still live.
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        // Parts are only needed until the finalizer has stitched them (minutes); S3 expiry
        // works in whole days, so one day is the shortest rule.
        { id: 'expire-parts', prefix: PARTS_PREFIX, expiration: Duration.days(1) },
        // The link works for linkTtlDays; expiry runs at the next midnight UTC after the day
        // count, so one extra day keeps a link from dying a few hours early.
        { id: 'expire-exports', prefix: EXPORTS_PREFIX, expiration: Duration.days(props.linkTtlDays + 1) },
        // A finalizer killed mid-upload leaves invisible, billed multipart parts behind.
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
  }
}
