use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::agent::{check_id, check_text};
use super::{MAX_ID_LEN, MAX_TEXT_LEN};
use crate::error::ModelError;

/// What an agent is about to do, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A tool (function) call made by the agent's framework.
    ToolCall {
        /// Tool name (`Tool::"<tool>"`).
        tool: String,
        /// Named arguments; exposed to Cedar as tags of the tool entity and as `context.args_json`.
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        args: Map<String, Value>,
    },
    /// A call to an LLM API.
    ModelCall {
        /// Provider (`openai`, `anthropic`, …).
        provider: String,
        /// Model name (`Model::"<model>"`).
        model: String,
        /// Prompt tokens, when known before the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_tokens: Option<u64>,
        /// Completion tokens, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_tokens: Option<u64>,
        /// Names of tools offered to the model.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tools: Vec<String>,
    },
    /// An outbound HTTP(S) request.
    HttpRequest {
        /// `GET`, `POST`, …
        method: String,
        /// `http` or `https`.
        scheme: String,
        /// Host name or address (`Host::"<host>"`).
        host: String,
        /// Destination port.
        port: u16,
        /// Path (and query) of the request.
        path: String,
    },
    /// A Model Context Protocol request.
    McpCall {
        /// MCP server name (`McpServer::"<server>"`).
        server: String,
        /// JSON-RPC method (`tools/call`, `tools/list`, …).
        method: String,
        /// Tool name for `tools/call` (`McpTool::"<server>/<tool>"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool: Option<String>,
        /// Tool arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        args: Option<Map<String, Value>>,
    },
    /// A process about to be executed.
    ProcessExec {
        /// Executable path (`Path::"<path>"`).
        path: String,
        /// Full argument vector, `argv[0]` included.
        #[serde(default)]
        argv: Vec<String>,
    },
    /// A file about to be read, written or unlinked.
    FileAccess {
        /// File path (`Path::"<path>"`).
        path: String,
        /// Intent.
        access: FileAccessMode,
    },
    /// An outbound network connection.
    NetConnect {
        /// Destination address (IPv4 or IPv6 literal, or a host name).
        addr: String,
        /// Destination port.
        port: u16,
        /// Transport protocol.
        proto: NetProto,
    },
}

/// The seven action kinds, without their payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// [`Action::ToolCall`]
    ToolCall,
    /// [`Action::ModelCall`]
    ModelCall,
    /// [`Action::HttpRequest`]
    HttpRequest,
    /// [`Action::McpCall`]
    McpCall,
    /// [`Action::ProcessExec`]
    ProcessExec,
    /// [`Action::FileAccess`]
    FileAccess,
    /// [`Action::NetConnect`]
    NetConnect,
}

impl ActionKind {
    /// All kinds, in declaration order.
    pub const ALL: [ActionKind; 7] = [
        ActionKind::ToolCall,
        ActionKind::ModelCall,
        ActionKind::HttpRequest,
        ActionKind::McpCall,
        ActionKind::ProcessExec,
        ActionKind::FileAccess,
        ActionKind::NetConnect,
    ];

    /// The wire name, which is also the Cedar action id (`Action::"tool_call"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ToolCall => "tool_call",
            ActionKind::ModelCall => "model_call",
            ActionKind::HttpRequest => "http_request",
            ActionKind::McpCall => "mcp_call",
            ActionKind::ProcessExec => "process_exec",
            ActionKind::FileAccess => "file_access",
            ActionKind::NetConnect => "net_connect",
        }
    }

    /// Position in [`ActionKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Intent of a [`Action::FileAccess`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FileAccessMode {
    /// Open for reading.
    Read,
    /// Open for writing (create, truncate, append).
    Write,
    /// Remove.
    Unlink,
}

impl FileAccessMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FileAccessMode::Read => "read",
            FileAccessMode::Write => "write",
            FileAccessMode::Unlink => "unlink",
        }
    }
}

/// Transport of a [`Action::NetConnect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum NetProto {
    /// TCP
    Tcp,
    /// UDP
    Udp,
}

impl NetProto {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            NetProto::Tcp => "tcp",
            NetProto::Udp => "udp",
        }
    }
}

impl Action {
    /// The action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::ToolCall { .. } => ActionKind::ToolCall,
            Action::ModelCall { .. } => ActionKind::ModelCall,
            Action::HttpRequest { .. } => ActionKind::HttpRequest,
            Action::McpCall { .. } => ActionKind::McpCall,
            Action::ProcessExec { .. } => ActionKind::ProcessExec,
            Action::FileAccess { .. } => ActionKind::FileAccess,
            Action::NetConnect { .. } => ActionKind::NetConnect,
        }
    }

    /// Parses one action from JSON, with a typed error for malformed input or an unknown kind.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let action: Action = ModelError::parse(text)?;
        action.validate()?;
        Ok(action)
    }

    /// Checks the fields an agent supplied (lengths, empty identifiers).
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            Action::ToolCall { tool, .. } => check_id("tool", tool),
            Action::ModelCall {
                provider,
                model,
                tools,
                ..
            } => {
                check_id("provider", provider)?;
                check_id("model", model)?;
                tools.iter().try_for_each(|t| check_id("tools", t))
            }
            Action::HttpRequest {
                method,
                scheme,
                host,
                path,
                ..
            } => {
                check_id("method", method)?;
                check_id("scheme", scheme)?;
                check_id("host", host)?;
                check_text("path", path, MAX_TEXT_LEN)
            }
            Action::McpCall {
                server,
                method,
                tool,
                ..
            } => {
                check_id("server", server)?;
                check_id("method", method)?;
                tool.as_deref().map_or(Ok(()), |t| check_id("tool", t))
            }
            Action::ProcessExec { path, argv } => {
                check_text("path", path, MAX_TEXT_LEN)?;
                non_empty("path", path)?;
                argv.iter()
                    .try_for_each(|a| check_text("argv", a, MAX_TEXT_LEN))
            }
            Action::FileAccess { path, .. } => {
                check_text("path", path, MAX_TEXT_LEN)?;
                non_empty("path", path)
            }
            Action::NetConnect { addr, .. } => {
                check_text("addr", addr, MAX_ID_LEN).and_then(|()| non_empty("addr", addr))
            }
        }
    }
}

fn non_empty(field: &'static str, value: &str) -> Result<(), ModelError> {
    if value.is_empty() {
        return Err(ModelError::Invalid {
            field,
            reason: "must not be empty".into(),
        });
    }
    Ok(())
}
