import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

const cache = new Map<string, Promise<string>>();
let client: SecretsManagerClient | undefined;

/**
 * A secret from the environment (local stack) or Secrets Manager (AWS, by ARN), fetched once
 * per cold start. The error names the variable, never the value.
 */
export function resolveSecret(name: string, plain: string | undefined, arn: string | undefined): Promise<string> {
  if (plain) return Promise.resolve(plain);
  if (!arn) return Promise.reject(new Error(`${name} or ${name}_ARN must be set`));
  let pending = cache.get(arn);
  if (!pending) {
    client ??= new SecretsManagerClient({});
    pending = client.send(new GetSecretValueCommand({ SecretId: arn })).then((r) => {
      if (!r.SecretString) throw new Error(`${name}_ARN: the secret has no string value`);
      return r.SecretString;
    });
    pending.catch(() => cache.delete(arn));
    cache.set(arn, pending);
  }
  return pending;
}
