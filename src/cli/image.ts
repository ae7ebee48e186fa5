/** `sandcell image import|ls|rm|prune|build`: the image store, through `sandcell/images` only. */
import { ImageError, ImageStore, type ImageInfo, type ImageProgress } from '../images/index.js';
import { readFlags } from './flags.js';
import { UsageError } from './usage.js';

export const IMAGE_HELP = `Usage:
  sandcell image import <archive|dir> [--name <name>]...   docker-archive, oci-archive, OCI layout dir,
                                                           rootfs tarball (plain or gzip) or directory
  sandcell image build <recipe.sh> --name <name> [-- <recipe args>...]
                                                           run the recipe (sh <recipe> <dir> [args]) into
                                                           a fresh directory and import it (see rootfs/)
  sandcell image ls [--json]                               name, id, layers, size, created
  sandcell image rm <name|id>...                           a name goes; the image with its last name
  sandcell image prune                                     remove the layers no image uses

Run an image by name: sandcell run --image <name> -- <command>. Names never start with '/' or
'.': an --image that does is a directory. The store: $SANDCELL_STORE, else /var/lib/sandcell
(root) or ~/.local/share/sandcell. Progress goes to stderr (--quiet: none).
`;

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** Progress on stderr: one rewritten line on a terminal, one line per layer otherwise. */
function progressPrinter(quiet: boolean): (e: ImageProgress) => void {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return (e) => {
    if (quiet) return;
    const short = (d: string): string => (d.startsWith('sha256:') ? d.slice(7, 19) : d);
    switch (e.type) {
      case 'format':
        process.stderr.write(`importing ${e.source} (${e.format})\n`);
        break;
      case 'bytes': {
        if (!tty) return;
        const now = Date.now();
        if (now - last < 100) return;
        last = now;
        const of = e.total ? ` / ${human(e.total)} (${Math.floor((100 * e.bytes) / e.total)}%)` : '';
        process.stderr.write(`\r\x1b[K  layer ${e.index + 1}/${e.count} ${short(e.digest)}: ${human(e.bytes)}${of}`);
        break;
      }
      case 'layer-done':
        process.stderr.write(`${tty ? '\r\x1b[K' : ''}  layer ${e.index + 1}/${e.count} ${short(e.diffId)}: ${e.reused ? 'already stored' : human(e.size)}\n`);
        break;
      case 'warning':
        process.stderr.write(`  warning: ${e.message}\n`);
        break;
      case 'log':
        process.stderr.write(`  | ${e.line}\n`);
        break;
      default:
        break;
    }
  };
}

function table(images: ImageInfo[]): string {
  const rows = [['NAME', 'ID', 'LAYERS', 'SIZE', 'CREATED']];
  for (const i of images) {
    const names = i.names.length > 0 ? i.names : ['<none>'];
    for (const n of names) rows.push([n, i.id.slice(7, 19), String(i.layers.length), human(i.size), i.created ?? '-']);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((x, c) => (c === r.length - 1 ? x : x.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}

export async function imageCommand(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === '--help' || verb === '-h' || rest.includes('--help')) {
    process.stdout.write(IMAGE_HELP);
    return verb === undefined ? 2 : 0;
  }
  const store = new ImageStore();
  const read = readFlags(rest, { '--name': 'list', '--json': 'switch', '--quiet': 'switch', '-q': 'switch' }, 'image');
  const names = read.list('--name');
  const positional = read.operands;
  const after = read.after;
  const json = read.has('--json');
  const quiet = read.has('--quiet') || read.has('-q');
  try {
    switch (verb) {
      case 'import': {
        if (positional.length !== 1) throw new UsageError('usage: sandcell image import <archive|dir> [--name <name>]');
        const image = await store.import(positional[0]!, { names, onProgress: progressPrinter(quiet) });
        process.stdout.write(`${image.id}${image.names.length ? ` ${image.names.join(' ')}` : ''}\n`);
        return 0;
      }
      case 'build': {
        if (positional.length !== 1 || names.length === 0) throw new UsageError('usage: sandcell image build <recipe.sh> --name <name> [-- <recipe args>...]');
        const image = await store.build(positional[0]!, { names, args: after, onProgress: progressPrinter(quiet) });
        process.stdout.write(`${image.id} ${image.names.join(' ')}\n`);
        return 0;
      }
      case 'ls':
        if (positional.length > 0) throw new UsageError('usage: sandcell image ls [--json]');
        process.stdout.write(json ? JSON.stringify(store.list(), null, 2) + '\n' : table(store.list()));
        return 0;
      case 'rm':
        if (positional.length === 0) throw new UsageError('usage: sandcell image rm <name|id>...');
        for (const ref of positional) {
          await store.remove(ref);
          process.stdout.write(`${ref}\n`);
        }
        return 0;
      case 'prune': {
        const r = await store.prune();
        process.stdout.write(`removed ${r.layers.length} layer${r.layers.length === 1 ? '' : 's'}, ${human(r.bytes)}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown image command ${JSON.stringify(verb)} (see sandcell image --help)`);
    }
  } catch (e) {
    if (e instanceof ImageError) {
      process.stderr.write(`sandcell: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
