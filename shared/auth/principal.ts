import { z } from 'zod';
import { cleanDisplayText } from '../text-rules';

/** Permissions the export service checks. S5/C10: only managers with the download permission export. */
export const PERMISSIONS = {
  exportDownload: 'export:download',
  auditRead: 'audit:read',
} as const;
export type Permission = (typeof PERMISSIONS)[keyof typeof PERMISSIONS];

/**
 * Ids become parts of table keys (`CH#{channelId}#MGR#{managerId}`, `cooldown#…#…`): a `#`
 * would let two different (channel, manager) pairs build the same key, and control characters
 * have no business in an id.
 */
const idSchema = z
  .string()
  .min(1)
  .max(200)
  // \p{Cs}: a lone surrogate (JSON's `\ud800` escape in a claim) is no id, and DynamoDB keys hold ids.
  .regex(/^[^#\p{Cc}\p{Cs}]+$/u, 'must not contain "#", control characters or lone surrogates');

/**
 * A channel id also names the channel's folder in the bucket (`exports/{channelId}/…`): a `/`
 * or a `.`/`..` segment would put its files outside `exports/` (past the lifecycle rule) or in
 * another channel's folder, and browsers rewrite `/../` in the presigned URL so its signature
 * fails. Channel ids are plain tokens, so anything else is refused.
 */
export const channelIdSchema = idSchema
  .regex(/^[A-Za-z0-9._:@-]+$/, 'must be letters, digits and . _ : @ - only (it names a storage folder)')
  .refine((v) => v !== '.' && v !== '..', 'must not be "." or ".."');

/** The claims a bearer token must carry; anything else in the token is ignored. */
export const principalSchema = z.object({
  channelId: channelIdSchema,
  managerId: idSchema,
  // Shown to auditors and posted by the bot: cleaned (text-rules.ts), not refused, since its
  // holder did not choose what the identity provider sends.
  name: z.string().max(500).transform(cleanDisplayText),
  permissions: z.array(z.string().min(1).max(100)).max(100),
});
export type Principal = z.infer<typeof principalSchema>;
/** A principal from a checked token, with the token's `exp` (seconds since the epoch). */
export type VerifiedPrincipal = Principal & { expiresAt: number };

export function hasPermission(principal: Principal, permission: Permission): boolean {
  return principal.permissions.includes(permission);
}
