import { finishCancellation } from './finalize-export';
import type { FollowUpMessage } from './messages';
import type { StepDeps } from './pipeline-steps';
import { finishRevocation } from './revoke-follow-ups';

/**
 * A revoke's or a cancel's follow-up message (the finalizer's queue, and its dead letter): the one
 * place that tells the two apart (finishRevocation, finishCancellation).
 */
export function finishFollowUp(message: FollowUpMessage, deps: StepDeps): Promise<'finished' | 'not-revoked' | 'not-canceled'> {
  return message.type === 'revoke' ? finishRevocation(message, deps) : finishCancellation(message, deps);
}
