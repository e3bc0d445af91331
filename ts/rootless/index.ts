export type { RootlessError } from './errors.js';
export { firstValidExecutablePath, findSbinTool, SBIN_DIRS } from './executable.js';
export {
  NOT_ROOTLESS,
  prefixWithRootlessDir,
  rootlessContext,
  vmmUserRuntimeDir,
  type RootlessContext,
} from '../plan/rootless-dirs.js';
export {
  launchAsRootlessUser,
  launchedExit,
  rootlessLauncher,
  startRootless,
  vmmGroups,
  type RootlessCommand,
} from './launch.js';
export {
  createRootlessUser,
  teardownRootlessUser,
  userExists,
  type CreateUserOptions,
  type RootlessUser,
} from './user.js';
export { createDirAllWithInheritOwner } from './owned-dirs.js';
