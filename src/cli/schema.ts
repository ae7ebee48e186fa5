/** `sandcell schema [config|problem]`: the JSON Schema of sandcell.yaml or of a problem file. */
import { problemSchema } from '../problems/index.js';
import { configSchema, jsonSchemaOf } from '../profiles/index.js';
import { UsageError } from './usage.js';

export function schemaCommand(args: readonly string[]): number {
  const what = args[0] ?? 'config';
  if (args.length > 1 || (what !== 'config' && what !== 'problem')) throw new UsageError('usage: sandcell schema [config|problem]');
  const schema = what === 'config' ? jsonSchemaOf(configSchema, 'sandcell.yaml') : jsonSchemaOf(problemSchema, 'sandcell problem file');
  process.stdout.write(JSON.stringify(schema, null, 2) + '\n');
  return 0;
}
