/**
 * What the exports table's `gsi1` (a manager's exports, newest first) projects: its keys only.
 * - Every chunk of an export rewrites the job item. An index projecting the job's attributes
 *   (ALL, or INCLUDE of them) is written again on each such change, on the partition every
 *   chunk of the export already shares, and with ALL it copies the inline definition too. A
 *   KEYS_ONLY index is written when a job is created or collected, never by a chunk.
 * - A projection cannot be changed in place on a deployed table (DynamoDB refuses, CloudFormation
 *   rolls back; a new index under another name is the only way). Keys never change when a field
 *   is added to jobs; an INCLUDE list would have had to.
 * The list reads the jobs themselves by key (BatchGetItem, strongly consistent). One constant
 * for the CDK table and the local stack's table, so the two cannot differ.
 */
export const JOB_INDEX_PROJECTION = 'KEYS_ONLY' as const;

/**
 * The index's name: what the store queries, what the tables declare and what the api's IAM grant
 * names (it may Query this index and nothing else of the table).
 */
export const JOB_INDEX_NAME = 'gsi1';
