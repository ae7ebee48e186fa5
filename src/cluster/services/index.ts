/**
 * Services: a long-lived program kept at a replica count across the workers of a farm, and
 * called with one JSON line in and one JSON line out. Workers run `startServiceAgent`; anyone
 * reaching the Redis uses a `ServicesClient`.
 */
export { startServiceAgent, type HeartbeatOptions, type ServiceAgent, type ServiceAgentOptions } from './agent.js';
export {
  ServiceError,
  ServicesClient,
  type CreateServiceOptions,
  type ReplicaStatus,
  type ServiceErrorCode,
  type ServiceStatus,
} from './client.js';
export type { Crash, ServiceOptions } from './schema.js';
