import { z } from 'zod';

/** Permissions the export service checks. S5/C10: only managers with the download permission export. */
export const PERMISSIONS = {
  exportDownload: 'export:download',
  auditRead: 'audit:read',
} as const;
export type Permission = (typeof PERMISSIONS)[keyof typeof PERMISSIONS];

/** The claims a bearer token must carry; anything else in the token is ignored. */
export const principalSchema = z.object({
  channelId: z.string().min(1).max(200),
  managerId: z.string().min(1).max(200),
  name: z.string().max(500),
  permissions: z.array(z.string().min(1).max(100)).max(100),
});
export type Principal = z.infer<typeof principalSchema>;

export function hasPermission(principal: Principal, permission: Permission): boolean {
  return principal.permissions.includes(permission);
}
