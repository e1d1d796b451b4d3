/** The sandbox port and its adapters: Docker (containers) and the local process (weak, and says so). */
export {
  createDockerSandbox,
  type DockerSandbox,
  type DockerSandboxOptions,
  dockerIsolationReport,
  type OwnedSandbox,
} from "./docker.ts"
export {
  createLocalProcessSandbox,
  type LocalProcessSandbox,
  type LocalProcessSandboxOptions,
} from "./localProcess.ts"
export {
  defaultSandboxLimits,
  type IsolationAspect,
  type IsolationReport,
  ownerLabel,
  type Sandbox,
  SandboxError,
  type SandboxExit,
  type SandboxHandle,
  type SandboxLimits,
  type SandboxMount,
  type SandboxNetwork,
  type SandboxSpec,
  sandboxLabel,
} from "./sandbox.ts"
export {
  dockerUnavailable,
  type SelectedSandbox,
  type SelectSandboxOptions,
  selectSandbox,
} from "./select.ts"
