/** Declared profiles (sandcell.yaml): named box shapes and program defaults, applied by name. */
export { loadProfiles, mergeOptions, Profiles, withProfile, type Profile } from './profiles.js';
export { configSchema, jsonSchemaOf, profileSchema } from './schema.js';
export { DeclarationError, Source, type DeclarationIssue, type PathPart } from './source.js';
