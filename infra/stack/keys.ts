import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';

/** The only use-actions anyone needs on the wrap key, split by who may perform them. */
// GenerateDataKey* also covers the WithoutPlaintext and key-pair variants.
export const WRAP_ACTIONS = ['kms:Encrypt', 'kms:GenerateDataKey*'] as const;
export const UNWRAP_ACTIONS = ['kms:Decrypt'] as const;
/** What S3 calls on the bucket key on a reader's or writer's behalf (SSE-KMS with a bucket key). */
export const BUCKET_KEY_USE_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey'] as const;
/** Every action that encrypts or decrypts data with a key: only S3 may call them with the bucket key. */
export const DATA_KEY_ACTIONS = ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:ReEncrypt*'] as const;

/**
 * Two customer-managed keys with yearly rotation:
 * - `wrapKey` wraps each workbook's package key (the key that actually encrypts the file). The
 *   api function wraps, the finalizer unwraps; nobody else may do either, and the key policy says
 *   so with explicit denies, because the default key policy lets any IAM policy in the account
 *   grant kms:Decrypt (an admin's `kms:*` would otherwise be enough to unwrap every file key).
 * - `bucketKey` is the bucket's SSE-KMS key. Kept separate because S3 needs GenerateDataKey and
 *   Decrypt for every write and read by chunk, finalizer and the download redirect: on the wrap
 *   key those grants would let the chunk workers unwrap package keys. Its policy (restrictBucketKey)
 *   denies Decrypt to every identity but the object readers, and any use outside S3: `parts/`
 *   holds rows in plain (deflated) XML, and with the default policy any identity of the account
 *   with s3:GetObject and kms:Decrypt on `*` (an admin, a data-platform role) could read them.
 *
 * Both keep CDK's default statement (the account may manage and use the key through IAM): the
 * denies name use actions only, so key administration (kms:PutKeyPolicy, kms:ScheduleKeyDeletion,
 * kms:EnableKeyRotation...) stays with the account's administrators and the deploy role.
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
    // Only with the export's id as the whole encryption context (kms-key-wrapper.ts): a package
    // key is bound to its job, and a call without that context (a key wrapped for no export, or
    // an attempt to unwrap one) is refused by IAM before KMS sees it. Null false: a call with no
    // context at all would otherwise pass ForAllValues vacuously.
    const exportIdContextOnly = {
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['exportId'] },
      Null: { 'kms:EncryptionContextKeys': 'false' },
    };
    owners.wrapper.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'WrapPackageKeys', actions: ['kms:Encrypt'], resources: [this.wrapKey.keyArn], conditions: exportIdContextOnly }),
    );
    owners.unwrapper.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'UnwrapPackageKeys', actions: [...UNWRAP_ACTIONS], resources: [this.wrapKey.keyArn], conditions: exportIdContextOnly }),
    );
  }

  /**
   * Pins the bucket key's use to S3 and its Decrypt to the roles that read objects (in the key
   * policy, so no identity policy elsewhere in the account can widen it):
   * - `OnlyObjectReadersDecrypt`: kms:Decrypt is denied to every principal but `readers`. S3 calls
   *   KMS on the reader's behalf (a forward access session), so `aws:PrincipalArn` is the reader's
   *   role; reading any object (and a multipart upload, which decrypts its data key) needs it.
   * - `OnlyThroughS3`: encrypt/decrypt actions are denied to everyone unless S3 makes the call
   *   (`kms:ViaService`), so not even a reader can unwrap a data key directly.
   * - `ObjectReadersViaS3`: allows the readers (also the only writers) Decrypt/GenerateDataKey
   *   through S3 of this account (their identity policies grant the same; this keeps the key
   *   policy self-describing). Deleting and listing need no key: the dlq is not a reader.
   * An operator adding a reader must add its role here (PART_READERS / FILE_READERS in
   * export-service-stack.ts); an identity policy alone is overridden by the deny.
   */
  restrictBucketKey(readers: readonly iam.IRole[]): void {
    const stack = Stack.of(this);
    const viaS3 = `s3.${stack.region}.amazonaws.com`;
    const readerArns = readers.map((role) => role.roleArn);
    this.bucketKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyObjectReadersDecrypt',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:Decrypt'],
        resources: ['*'],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': readerArns } },
      }),
    );
    this.bucketKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyThroughS3',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...DATA_KEY_ACTIONS],
        resources: ['*'],
        conditions: { StringNotEquals: { 'kms:ViaService': viaS3 } },
      }),
    );
    // Principal `*` narrowed by aws:PrincipalArn rather than the roles as principals: KMS checks
    // that principals exist when the policy is set, and a role created in the same deployment may
    // not have propagated yet; conditions are not checked that way.
    this.bucketKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ObjectReadersViaS3',
        effect: iam.Effect.ALLOW,
        principals: [new iam.AnyPrincipal()],
        actions: [...BUCKET_KEY_USE_ACTIONS],
        resources: ['*'],
        conditions: {
          ArnEquals: { 'aws:PrincipalArn': readerArns },
          StringEquals: { 'kms:ViaService': viaS3, 'kms:CallerAccount': stack.account },
        },
      }),
    );
  }
}
