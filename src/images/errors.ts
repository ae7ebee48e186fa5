/**
 * The errors of the image store. An archive is untrusted input: what is wrong with it is named
 * down to the entry, so a user can tell a hostile or broken image from a problem of the store.
 */

/** Why an image could not be imported, listed, removed or resolved. `code` is stable, the message is for people. */
export class ImageError extends Error {
  override readonly name: string = 'ImageError';
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * An entry of an archive (an image layer, or the archive holding the image) that is refused:
 * `layer` names the archive or layer (digest or file), `entry` the path as the archive spells
 * it, `code` the rule it broke (`PARENT_PATH`, `THROUGH_SYMLINK`,
 * `HARDLINK_OUTSIDE`, `TRUNCATED`, `TOO_LARGE`, `TOO_MANY_ENTRIES`, `BAD_ARCHIVE`, `UNSUPPORTED_ENTRY`).
 */
export class ImageArchiveError extends ImageError {
  override readonly name = 'ImageArchiveError';
  readonly layer: string;
  readonly entry: string | null;

  constructor(code: string, layer: string, entry: string | null, reason: string) {
    super(code, `${layer}${entry !== null ? `: entry ${JSON.stringify(entry)}` : ''}: ${reason}`);
    this.layer = layer;
    this.entry = entry;
  }
}
