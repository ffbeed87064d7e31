// ESM entry of agent-assembly: the same module instance as the CommonJS entry (one governor
// per process, whichever way it is imported).
import cjs from './index.cjs';

export const {
  AgentAssemblyError,
  ConfigError,
  GatewayUnavailableError,
  InvalidActionError,
  PolicyDeniedError,
  ModelCall,
  init,
  governor,
  shutdown,
  flush,
  stats,
  govern,
  decide,
  report,
  modelCall,
  denialMessage,
  governExecute,
  governTool,
  agentsErrorFunction,
  governMcpClient,
  governMcpServer,
  native,
  version,
} = cjs;
export default cjs;
