/**
 * Which queue a run goes to. Workers are told their labels (`images=debian,gpu=none`); each label
 * set is a queue of its own, so a job waits only for workers that have what it asks for, and
 * BullMQ's fair share and locking work per queue without filters in Lua.
 */
export type Labels = Record<string, string>;

const LABEL_PART = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export class LabelError extends Error {
  override readonly name = 'LabelError';
}

/** `k=v,k2=v2` (the worker's `--labels`) to a label set. */
export function parseLabels(spec: string): Labels {
  const labels: Labels = {};
  for (const part of spec.split(',').filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    const [k, v] = eq < 0 ? [part, ''] : [part.slice(0, eq), part.slice(eq + 1)];
    if (eq < 0) throw new LabelError(`label ${JSON.stringify(part)}: expected key=value`);
    checkLabel(k, v);
    if (k in labels) throw new LabelError(`label ${k} is given twice`);
    labels[k] = v;
  }
  return labels;
}

function checkLabel(k: string, v: string): void {
  if (!LABEL_PART.test(k)) throw new LabelError(`label key ${JSON.stringify(k)}: letters, digits, "_", "." and "-", at most 63`);
  if (!LABEL_PART.test(v)) throw new LabelError(`label ${k}: value ${JSON.stringify(v)}: letters, digits, "_", "." and "-", at most 63`);
}

/** The queue of a label set: `runs` without labels, else `runs[k=v,...]` with the keys sorted. */
export function queueName(labels: Labels = {}): string {
  const keys = Object.keys(labels).sort();
  for (const k of keys) checkLabel(k, labels[k] as string);
  return keys.length === 0 ? 'runs' : `runs[${keys.map((k) => `${k}=${labels[k]}`).join(',')}]`;
}
