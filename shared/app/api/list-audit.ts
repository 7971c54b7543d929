import { z } from 'zod';
import { requirePermission, ValidationError } from '../../domain';
import type { Principal } from '../../auth/principal';
import type { AuditPage } from '../../ports/audit-log';
import type { ApiDeps } from './deps';

/** A date (whole day, UTC) or a date-time with offset. */
const instant = z.union([z.iso.datetime({ offset: true }), z.iso.date()]);

export const listAuditQuerySchema = z
  .strictObject({
    from: instant.optional(),
    to: instant.optional(),
    managerId: z.string().min(1).max(200).optional(),
    kind: z.enum(['cases', 'contacts']).optional(),
    cursor: z.string().min(1).max(4096).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
  })
  .refine((q) => !q.from || !q.to || toInstant(q.from, 'start') <= toInstant(q.to, 'end'), {
    message: 'to must not be before from',
    path: ['to'],
  });

function toInstant(value: string, edge: 'start' | 'end'): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return edge === 'start' ? `${value}T00:00:00.000Z` : `${value}T23:59:59.999Z`;
  return new Date(value).toISOString();
}

/** GET /v1/audit: audit:read only, always the caller's own channel. */
export async function listAudit(deps: ApiDeps, principal: Principal, query: Record<string, string | undefined>): Promise<AuditPage> {
  requirePermission(principal, 'audit:read');
  const parsed = listAuditQuerySchema.safeParse(query);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || 'query';
    throw new ValidationError(`${field}: ${issue?.message ?? 'invalid'}`, { code: 'INVALID_QUERY', field });
  }
  const q = parsed.data;
  return deps.audit.query({
    channelId: principal.channelId,
    ...(q.from ? { from: toInstant(q.from, 'start') } : {}),
    ...(q.to ? { to: toInstant(q.to, 'end') } : {}),
    ...(q.managerId ? { managerId: q.managerId } : {}),
    ...(q.kind ? { kind: q.kind } : {}),
    ...(q.cursor ? { cursor: q.cursor } : {}),
    limit: q.limit,
  });
}
