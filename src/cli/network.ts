/**
 * `sandcell network create|ls|rm`: private networks from the shell. A network made here outlives
 * the command (it is persistent): it stays until `sandcell network rm`, or the host reboots.
 */
import { createNetwork, listNetworks, removeNetwork } from '../index.js';
import { readFlags } from './flags.js';
import { UsageError } from './usage.js';

export const NETWORK_HELP = `Usage:
  sandcell network create <name> [--subnet <a.b.c.0/24>]   make a private network (root only); it
                                                           stays until removed
  sandcell network ls [--json]                             the networks, their subnets and boxes
  sandcell network rm <name>                               remove one (refused while boxes are on it)

Boxes join with sandcell run --network <name> [--hostname <h>]: they reach each other by
address and hostname, and nothing else (see docs/networks.md).
`;

export async function networkCommand(args: readonly string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || args.includes('--help') || args.includes('-h')) {
    process.stdout.write(NETWORK_HELP);
    return verb === undefined ? 2 : 0;
  }
  if (verb === 'create') {
    const read = readFlags(rest, { '--subnet': 'value' }, 'network');
    const [name, ...more] = read.operands;
    if (name === undefined || more.length > 0 || read.after.length > 0) throw new UsageError('usage: sandcell network create <name> [--subnet <a.b.c.0/24>]');
    const subnet = read.value('--subnet');
    const n = await createNetwork(name, { persistent: true, ...(subnet !== undefined ? { subnet } : {}) });
    process.stdout.write(`${n.name}\t${n.subnet}\n`);
    return 0;
  }
  if (verb === 'ls') {
    const read = readFlags(rest, { '--json': 'switch' }, 'network');
    if (read.operands.length > 0 || read.after.length > 0) throw new UsageError('usage: sandcell network ls [--json]');
    const all = await listNetworks();
    if (read.has('--json')) {
      process.stdout.write(JSON.stringify(all) + '\n');
      return 0;
    }
    for (const n of all) {
      const boxes = n.members.map((m) => `${m.hostname ?? '-'}=${m.address}`).join(',') || '-';
      process.stdout.write(`${n.name}\t${n.subnet}\t${n.ownerPid === null ? 'persistent' : `owner ${n.ownerPid}`}\t${boxes}\n`);
    }
    return 0;
  }
  if (verb === 'rm') {
    const read = readFlags(rest, {}, 'network');
    if (read.operands.length !== 1 || read.after.length > 0) throw new UsageError('usage: sandcell network rm <name>');
    await removeNetwork(read.operands[0] as string);
    return 0;
  }
  throw new UsageError(`unknown network command ${JSON.stringify(verb)} (see sandcell network --help)`);
}
