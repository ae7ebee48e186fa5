/**
 * Reading files back out of a living box. The box may be hostile: paths are resolved inside its
 * root by the native side (no symlink followed, only regular files, never more than the limit);
 * here the patterns are matched and the limits per file and in total are kept.
 */
import type { NativeBox } from '../native.js';
import { errnoName } from '../native.js';

export interface Collected {
  /** Files read, by their path relative to the working directory. */
  files: Record<string, Buffer>;
  /** Files (or patterns that matched nothing) that could not be read, and why. */
  errors: Record<string, string>;
}

export interface CollectLimits {
  perFileBytes: number;
  totalBytes: number;
}

function globToRegExp(segment: string): RegExp {
  const escaped = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

const isGlob = (segment: string): boolean => /[*?]/.test(segment);

/** Expands one pattern to the file paths it names (relative to `dir`). */
function expand(box: NativeBox, dir: string, pattern: string): string[] {
  let prefixes = [''];
  const segments = pattern.split('/');
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    const next: string[] = [];
    for (const prefix of prefixes) {
      const path = prefix ? `${prefix}/${segment}` : segment;
      if (!isGlob(segment)) {
        next.push(path);
        continue;
      }
      let entries: { name: string; dir: boolean }[];
      try {
        entries = box.listDir(dir, prefix);
      } catch {
        continue;
      }
      const re = globToRegExp(segment);
      for (const e of entries) {
        if (re.test(e.name) && (last ? !e.dir : e.dir)) next.push(prefix ? `${prefix}/${e.name}` : e.name);
      }
    }
    prefixes = next;
  });
  return prefixes.sort();
}

export function collectFiles(box: NativeBox, dir: string, patterns: readonly string[], limits: CollectLimits): Collected {
  const out: Collected = { files: {}, errors: {} };
  let total = 0;
  for (const pattern of patterns) {
    // The native side refuses any path that leaves `dir` too, but can only give the kernel's errno.
    if (pattern.startsWith('/') || pattern.split('/').some((s) => s === '..' || s === '')) {
      out.errors[pattern] = "must be relative to the working directory, without '..' or empty parts";
      continue;
    }
    const names = expand(box, dir, pattern);
    if (names.length === 0) out.errors[pattern] = 'no file matched';
    for (const name of names) {
      if (name in out.files) continue;
      const budget = Math.min(limits.perFileBytes, limits.totalBytes - total);
      try {
        const data = box.readFile(dir, name, budget);
        total += data.length;
        out.files[name] = data;
      } catch (e) {
        const errno = (e as { errno?: number }).errno;
        const code = errno === undefined ? '' : errnoName(errno);
        out.errors[name] =
          code === 'ENOENT'
            ? 'does not exist'
            : code === 'ELOOP'
            ? 'is a symbolic link (not followed)'
            : code === 'EFBIG'
              ? `is larger than the ${budget < limits.perFileBytes ? 'remaining total' : 'per-file'} limit of ${budget} bytes`
              : code === 'EINVAL'
                ? 'is not a regular file'
                : (e as Error).message;
      }
    }
  }
  return out;
}
