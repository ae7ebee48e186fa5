// Whether objects made one after another keep one V8 object shape (hidden class). Objects made on
// every run must: one whose shape is new each time is a shape allocated per run, and each read of
// it a lookup in V8's runtime instead of its inline cache.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--allow-natives-syntax');
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

/** How many of the later half of `made` (the caches warm by then) have a shape other than the one before. */
export function shapeChanges(made: readonly object[]): number {
  let changes = 0;
  for (let i = Math.ceil(made.length / 2); i < made.length; i++) if (!haveSameMap(made[i - 1]!, made[i]!)) changes++;
  return changes;
}
