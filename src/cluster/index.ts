/**
 * The farm (`sandcell/cluster`): many machines as one sandbox, on BullMQ and Redis. Workers
 * (`sandcell worker --redis <url>`) take runs from a queue; `connectCluster()` sends them.
 *
 * @module sandcell/cluster
 */
export { connectCluster, Farm, FarmJobError, type ClusterOptions, type FarmJobErrorDetail, type FarmJudgeOptions, type FarmProgress, type FarmRunOptions } from './farm.js';
export { DEFAULT_PREFIX, parseRedisUrl, RedisUrlError, type RedisConnection } from './connection.js';
export { BlobError, type BlobLimits } from './blobs.js';
export { queueName, parseLabels, LabelError, type Labels } from './queues.js';
export type { FarmErrorKind, FarmResult, Placement } from './wire.js';
export {
  ServiceError,
  ServicesClient,
  startServiceAgent,
  type CreateServiceOptions,
  type Crash,
  type HeartbeatOptions,
  type ReplicaStatus,
  type ServiceAgent,
  type ServiceAgentOptions,
  type ServiceErrorCode,
  type ServiceOptions,
  type ServiceStatus,
} from './services/index.js';
