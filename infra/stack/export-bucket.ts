import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export const PARTS_PREFIX = 'parts/';
export const EXPORTS_PREFIX = 'exports/';
/** The object reads the bucket policy pins to named roles (the bucket is not versioned; both, still). */
export const OBJECT_READ_ACTIONS = ['s3:GetObject', 's3:GetObjectVersion'] as const;

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

  /**
   * Denies reading objects under each prefix to every principal but the roles named for it, in
   * the bucket policy, so an identity policy elsewhere in the account (an admin's `s3:*`, a
   * data-platform role's `s3:GetObject` on `*`) cannot read them:
   * - `parts/` holds rows as plain deflated XML (and selections, job definitions): only the chunk
   *   and finalizer roles read it; the api writes selections there and, like the dlq, deletes.
   * - `exports/` holds the password-protected files: only the api role reads them, by presigning
   *   the download redirect's GET (S3 checks the signing role when the URL is used).
   * Only object reads are denied: listing, deleting, and managing the bucket and its policy
   * (CloudFormation's deploy role, the account's administrators) are untouched, and a bucket
   * policy that locks out its own account can always be removed by the account's root user.
   * `aws:PrincipalArn` is the role's ARN for its sessions, so the deny is by role, not by session.
   * An operator adding a reader must add its role here (PART_READERS / FILE_READERS in
   * export-service-stack.ts); an identity policy alone is overridden by the deny.
   */
  restrictObjectReads(readers: { prefix: string; sid: string; roles: readonly iam.IRole[] }[]): void {
    for (const { prefix, sid, roles } of readers) {
      this.bucket.addToResourcePolicy(
        new iam.PolicyStatement({
          sid,
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: [...OBJECT_READ_ACTIONS],
          resources: [this.bucket.arnForObjects(`${prefix}*`)],
          conditions: { ArnNotEquals: { 'aws:PrincipalArn': roles.map((role) => role.roleArn) } },
        }),
      );
    }
  }
}
