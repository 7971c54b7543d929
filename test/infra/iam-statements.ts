import type { Template } from 'aws-cdk-lib/assertions';
import { resourcesOf } from './synth-stack';

export type Statement = {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: unknown;
  NotResource?: unknown;
  Principal?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

export type RoleStatement = { roleId: string; policyId: string; statement: Statement };

const asList = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** True when an IAM action pattern (with * and ? wildcards) covers `action`. */
export function actionCovers(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(action);
}

export function statementAllows(statement: Statement, action: string): boolean {
  if (statement.Effect !== 'Allow') return false;
  if (statement.NotAction !== undefined) return !asList(statement.NotAction).some((p) => actionCovers(p, action));
  return asList(statement.Action).some((p) => actionCovers(p, action));
}

/** Whether the statement's resources reference the logical id (Ref, GetAtt or inside a Join), or are `*`. */
export function statementReaches(statement: Statement, logicalId: string): boolean {
  if (statement.NotResource !== undefined) return true;
  const resources = asList(statement.Resource as unknown);
  return resources.some((r) => r === '*' || JSON.stringify(r).includes(`"${logicalId}"`));
}

/** Every identity-policy statement in the template, with the role it is attached to. */
export function roleStatements(template: Template): RoleStatement[] {
  const out: RoleStatement[] = [];
  for (const [policyId, policy] of Object.entries(resourcesOf(template, 'AWS::IAM::Policy'))) {
    const roles = asList(policy.Properties?.Roles as unknown[]).map((r) => (r as { Ref: string }).Ref);
    for (const statement of asList(policy.Properties?.PolicyDocument?.Statement as Statement[])) {
      for (const roleId of roles) out.push({ roleId, policyId, statement });
    }
  }
  for (const [roleId, role] of Object.entries(resourcesOf(template, 'AWS::IAM::Role'))) {
    for (const inline of asList(role.Properties?.Policies as { PolicyName: string; PolicyDocument: { Statement: Statement[] } }[])) {
      for (const statement of asList(inline.PolicyDocument.Statement)) out.push({ roleId, policyId: `${roleId}.${inline.PolicyName}`, statement });
    }
  }
  return out;
}

/** Role logical ids that may perform `action` on the resource with `logicalId`. */
export function rolesAllowed(template: Template, action: string, logicalId: string): Set<string> {
  return new Set(
    roleStatements(template)
      .filter(({ statement }) => statementAllows(statement, action) && statementReaches(statement, logicalId))
      .map(({ roleId }) => roleId),
  );
}
