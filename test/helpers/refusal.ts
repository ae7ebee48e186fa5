import { expect } from 'vitest';

import { SandboxOptionsError } from '../../src/errors.js';

/** The issues a call is refused with, as `path: message`; throws if it is not refused. */
export function refusal(resolve: () => unknown): string[] {
  try {
    resolve();
  } catch (e) {
    expect(e).toBeInstanceOf(SandboxOptionsError);
    return (e as SandboxOptionsError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('the options were accepted');
}
