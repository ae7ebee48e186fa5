/**
 * sandcell: run programs you did not write in a Linux box they cannot leave, and get back their
 * output, a verdict and exact resource usage.
 *
 * @module sandcell
 */
export { run, spawn } from './run.js';
export { checkSandboxOptions, checkSandboxRunOptions, Sandbox, type RunResult, type SandboxOptions, type SandboxRunOptions } from './sandbox.js';
export { SandboxProcess } from './supervise/process.js';
export { AbortError, formatOptionPath, SandboxNetworkError, SandboxOptionsError, SandboxSetupError, type OptionIssue } from './errors.js';
export { createNetwork, listNetworks, removeNetwork, Network, type CreateNetworkOptions, type NetworkInfo } from './network/private.js';
export { prepare, setCgroupsAhead, setWarmBoxes, shutdown } from './runtime.js';
export { onDebugEvent, type DebugEvent, type WarmOutcome } from './debug.js';
export { setOwnerIds, type OwnerIds } from './plan/ids.js';
export { checkOptions, DEFAULT_LIMITS, optionSchemas, parseOptions, type ParsedOptions } from './options.js';
export { parseDuration, parseSize } from './units.js';
export { peerCredentials, type PeerCredentials } from './peer-credentials.js';
export type {
  Bind,
  BoxOptions,
  BoxShape,
  FileContent,
  Mount,
  ProgramOptions,
  Duration,
  EncodedOutput,
  Limits,
  NetworkMode,
  NetworkOptions,
  OutputEncoding,
  PublishedPort,
  RunOptions,
  Size,
  SpawnOptions,
} from './options.js';
export type { NetworkConnection, NetworkReport } from './network/proxy.js';
export type { PublishedAddress } from './network/publish.js';
export type { Enforcement, LimitsEnforced, Result, Status, Usage, Violation } from './result.js';
export type { PresetName as SeccompPreset, SeccompPolicy } from './seccomp/index.js';
