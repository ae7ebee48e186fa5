/** The repository's root directory. */
export const ROOT: string;
/** sha256 (hex) over native/** and binding.gyp, as `npm run prebuilds` records it. */
export function nativeSourcesHash(): string;
