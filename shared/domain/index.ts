/** Public API of the domain: pure TypeScript, no AWS SDK. */
export * from './errors';
export * from './calendar';
export * from './policies';
export * from './records';
export * from './filter';
export * from './export-request';
export * from './column-spec';
export * from './columns/cases';
export * from './columns/users';
export { activeProfileKeys, profileColumnKey, profileColumnType, toProfileCell, type ProfileKeyList } from './columns/profile-values';
export * from './generator';
export * from './record-parsers';
export * from './record-salvage';
