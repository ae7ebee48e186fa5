/** A command line that cannot be read: the message names the flag and what is wrong. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
