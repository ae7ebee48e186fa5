/** The cgroup layer (internal to sandcell, not the public API). */
export type {
  CgroupDriver,
  CgroupLimits,
  CgroupVersion,
  DetectOptions,
  EnforcedLimits,
  FakeCgroupFs,
  Mechanism,
  OpenResult,
  RunCgroup,
} from './driver.js';
export { cleanupOrphans, listSandcellCgroups, openCgroupDriver } from './detect.js';
