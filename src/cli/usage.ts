/** A command line that cannot be read: the message names the flag and what is wrong. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The daemon SANDCELL_HOST names could not be reached: the message names it and the system's reason. */
export class UnreachableDaemonError extends Error {
  override readonly name = 'UnreachableDaemonError';
}
