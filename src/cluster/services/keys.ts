/**
 * Where services live in Redis. Every key starts with the cluster's prefix, so several farms (or
 * test runs) share one Redis without seeing each other.
 */
export interface ServiceKeys {
  /** SET of service names. */
  readonly names: string;
  /** ZSET: worker name → the Redis time (ms) its heartbeat lapses. */
  readonly workers: string;
  /** HASH: worker name → its labels (JSON). */
  readonly labels: string;
  /** HASH: `spec` → what the service runs (JSON, written once), `replicas` → its desired count. */
  service(name: string): string;
  /** HASH: slot index → the replica filling it (JSON). */
  slots(name: string): string;
  /** HASH: `lastCrash` → the service's last crash or lost replica (JSON). */
  events(name: string): string;
  /** LIST: calls waiting for a replica (pushed left, taken right). */
  queue(name: string): string;
  /** LIST: the call a replica has taken and not answered yet (at most one). */
  inflight(replica: string): string;
  /** LIST: replies to one client. */
  reply(client: string): string;
  /** What every reply key starts with: a call naming any other key is refused. */
  readonly replyPrefix: string;
  /** What every in-flight key starts with (for the scripts, which build them from replica ids). */
  readonly inflightPrefix: string;
}

export function serviceKeys(prefix: string): ServiceKeys {
  const p = `${prefix}:svc`;
  return {
    names: `${p}:names`,
    workers: `${p}:workers`,
    labels: `${p}:labels`,
    service: (name) => `${p}:service:${name}`,
    slots: (name) => `${p}:slots:${name}`,
    events: (name) => `${p}:events:${name}`,
    queue: (name) => `${p}:queue:${name}`,
    inflight: (replica) => `${p}:inflight:${replica}`,
    reply: (client) => `${p}:reply:${client}`,
    replyPrefix: `${p}:reply:`,
    inflightPrefix: `${p}:inflight:`,
  };
}
