import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/** The only use-actions anyone needs on the wrap key, split by who may perform them. */
// GenerateDataKey* also covers the WithoutPlaintext and key-pair variants.
export const WRAP_ACTIONS = ['kms:Encrypt', 'kms:GenerateDataKey*'] as const;
export const UNWRAP_ACTIONS = ['kms:Decrypt'] as const;

/**
 * Two customer-managed keys with yearly rotation:
 * - `wrapKey` wraps each workbook's package key (the key that actually encrypts the file). The
 *   api function wraps, the finalizer unwraps; nobody else may do either, and the key policy says
 *   so with explicit denies, because the default key policy lets any IAM policy in the account
 *   grant kms:Decrypt (an admin's `kms:*` would otherwise be enough to unwrap every file key).
 * - `bucketKey` is the bucket's SSE-KMS key. Kept separate because S3 needs GenerateDataKey and
 *   Decrypt for every write and read by chunk, finalizer and the download redirect: on the wrap
 *   key those grants would let the chunk workers unwrap package keys.
 */
export class ServiceKeys extends Construct {
  readonly wrapKey: kms.Key;
  readonly bucketKey: kms.Key;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.wrapKey = new kms.Key(this, 'WrapKey', {
      description: 'export-service: wraps XLSX package keys (api encrypts, finalizer decrypts)',
      enableKeyRotation: true,
    });
    this.bucketKey = new kms.Key(this, 'BucketKey', {
      description: 'export-service: SSE-KMS for the export bucket',
      enableKeyRotation: true,
    });
  }

  /**
   * Pins the wrap key's use to exactly these roles (in the key policy, so no identity policy
   * elsewhere in the account can widen it) and grants them the matching actions.
   */
  restrictWrapKey(owners: { wrapper: iam.IRole; unwrapper: iam.IRole }): void {
    const denyOthers = (sid: string, actions: readonly string[], allowed: iam.IRole) =>
      new iam.PolicyStatement({
        sid,
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...actions],
        resources: ['*'],
        conditions: { StringNotEquals: { 'aws:PrincipalArn': allowed.roleArn } },
      });
    this.wrapKey.addToResourcePolicy(denyOthers('OnlyApiWraps', WRAP_ACTIONS, owners.wrapper));
    this.wrapKey.addToResourcePolicy(denyOthers('OnlyFinalizerUnwraps', UNWRAP_ACTIONS, owners.unwrapper));
    // Re-encrypting under another key would move a wrapped key out from under these rules.
    this.wrapKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'NoReEncrypt',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:ReEncrypt*'],
        resources: ['*'],
      }),
    );
    owners.wrapper.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'WrapPackageKeys', actions: ['kms:Encrypt'], resources: [this.wrapKey.keyArn] }),
    );
    owners.unwrapper.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'UnwrapPackageKeys', actions: [...UNWRAP_ACTIONS], resources: [this.wrapKey.keyArn] }),
    );
  }
}
