//! The mapping Action → Cedar (principal, action, resource, context, entities).
//! docs/policy.md documents it; `tests/mapping.rs` checks every kind against the schema.

use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};
use serde_json::{Map, Value};

use crate::budget::BudgetView;
use crate::model::{Action, ActionKind, Agent, Layer};

/// Entity type names and action uids, parsed once.
pub(crate) struct Names {
    pub agent: EntityTypeName,
    pub team: EntityTypeName,
    pub tool: EntityTypeName,
    pub model: EntityTypeName,
    pub host: EntityTypeName,
    pub mcp_server: EntityTypeName,
    pub mcp_tool: EntityTypeName,
    pub path: EntityTypeName,
    pub addr: EntityTypeName,
    pub actions: [EntityUid; 7],
}

pub(crate) fn names() -> Option<&'static Names> {
    static NAMES: OnceLock<Option<Names>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            let t = |s: &str| EntityTypeName::from_str(s).ok();
            let action_ty = t("Action")?;
            let action = |k: ActionKind| {
                EntityUid::from_type_name_and_id(action_ty.clone(), EntityId::new(k.as_str()))
            };
            Some(Names {
                agent: t("Agent")?,
                team: t("Team")?,
                tool: t("Tool")?,
                model: t("Model")?,
                host: t("Host")?,
                mcp_server: t("McpServer")?,
                mcp_tool: t("McpTool")?,
                path: t("Path")?,
                addr: t("Addr")?,
                actions: ActionKind::ALL.map(action),
            })
        })
        .as_ref()
}

pub(crate) fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

/// A Cedar request with the entities it needs.
pub(crate) struct CedarRequest {
    pub principal: EntityUid,
    pub action: EntityUid,
    pub resource: EntityUid,
    pub context: Context,
    pub entities: Entities,
}

/// Why a request could not be built (never expected for validated model input).
#[derive(Debug)]
pub(crate) struct MappingError(pub String);

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_owned())
}

fn long(v: impl TryInto<i64>) -> RestrictedExpression {
    RestrictedExpression::new_long(v.try_into().unwrap_or(i64::MAX))
}

/// Top-level args as string tags: strings as they are, other values as compact JSON.
fn arg_tags(args: &Map<String, Value>) -> Vec<(String, RestrictedExpression)> {
    args.iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), RestrictedExpression::new_string(text))
        })
        .collect()
}

pub(crate) fn args_json(args: Option<&Map<String, Value>>) -> String {
    let Some(args) = args else {
        return "{}".to_owned();
    };
    let mut out = Vec::with_capacity(64);
    crate::canonical::write_json_object(args, &mut out);
    String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
}

/// Resource uid of `action` (also used by the policy index).
pub(crate) fn resource_uid(n: &Names, action: &Action) -> EntityUid {
    match action {
        Action::ToolCall { tool, .. } => uid(&n.tool, tool),
        Action::ModelCall { model, .. } => uid(&n.model, model),
        Action::HttpRequest { host, .. } => uid(&n.host, host),
        Action::McpCall {
            server,
            tool: Some(tool),
            ..
        } => uid(&n.mcp_tool, &format!("{server}/{tool}")),
        Action::McpCall { server, .. } => uid(&n.mcp_server, server),
        Action::ProcessExec { path, .. } | Action::FileAccess { path, .. } => uid(&n.path, path),
        Action::NetConnect { addr, port, .. } => uid(&n.addr, &addr_port(addr, *port)),
    }
}

/// `ip:port`, or `[ip]:port` for IPv6.
pub(crate) fn addr_port(addr: &str, port: u16) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Builds the Cedar request for `agent` doing `action`.
pub(crate) fn build(
    n: &Names,
    agent: &Agent,
    action: &Action,
    layer: Layer,
    budget: &BudgetView,
    now_ms: i64,
) -> Result<CedarRequest, MappingError> {
    let principal = uid(&n.agent, &agent.agent_id);
    let resource = resource_uid(n, action);
    let kind = action.kind();
    let action_uid = n
        .actions
        .get(kind.index())
        .cloned()
        .ok_or_else(|| MappingError(format!("no Cedar action for {kind}")))?;

    let mut ctx: Vec<(String, RestrictedExpression)> = Vec::with_capacity(12);
    ctx.push(("layer".into(), s(layer.as_str())));
    if let Some(session) = &agent.session_id {
        ctx.push(("session_id".into(), s(session)));
    }
    ctx.push((
        "budget".into(),
        RestrictedExpression::new_record([
            (
                "exceeded".to_owned(),
                RestrictedExpression::new_bool(budget.exceeded),
            ),
            ("calls_remaining".to_owned(), long(budget.calls_remaining)),
            ("tokens_remaining".to_owned(), long(budget.tokens_remaining)),
            (
                "cost_remaining_micros".to_owned(),
                long(budget.cost_remaining_micros),
            ),
            ("utilization_pct".to_owned(), long(budget.utilization_pct)),
        ])
        .map_err(|e| MappingError(e.to_string()))?,
    ));
    let secs = now_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    ctx.push((
        "time".into(),
        RestrictedExpression::new_record([
            ("epoch_secs".to_owned(), long(secs)),
            ("hour".to_owned(), long(secs.rem_euclid(86_400) / 3600)),
            // 1970-01-01 was a Thursday (4).
            ("weekday".to_owned(), long((days + 3).rem_euclid(7) + 1)),
        ])
        .map_err(|e| MappingError(e.to_string()))?,
    ));

    let mut resource_tags = Vec::new();
    match action {
        Action::ToolCall { tool, args } => {
            ctx.push(("tool".into(), s(tool)));
            ctx.push(("args_json".into(), s(&args_json(Some(args)))));
            resource_tags = arg_tags(args);
        }
        Action::ModelCall {
            provider,
            model,
            input_tokens,
            output_tokens,
            tools,
        } => {
            ctx.push(("provider".into(), s(provider)));
            ctx.push(("model".into(), s(model)));
            if let Some(t) = input_tokens {
                ctx.push(("input_tokens".into(), long(*t)));
            }
            if let Some(t) = output_tokens {
                ctx.push(("output_tokens".into(), long(*t)));
            }
            ctx.push((
                "tools".into(),
                RestrictedExpression::new_set(tools.iter().map(|t| s(t))),
            ));
        }
        Action::HttpRequest {
            method,
            scheme,
            host,
            port,
            path,
        } => {
            ctx.push(("method".into(), s(method)));
            ctx.push(("scheme".into(), s(scheme)));
            ctx.push(("host".into(), s(host)));
            ctx.push(("port".into(), long(*port)));
            ctx.push(("path".into(), s(path)));
            let url = format!("{scheme}://{}{path}", addr_port(host, *port));
            ctx.push(("url".into(), s(&url)));
        }
        Action::McpCall {
            server,
            method,
            tool,
            args,
        } => {
            ctx.push(("server".into(), s(server)));
            ctx.push(("method".into(), s(method)));
            if let Some(t) = tool {
                ctx.push(("tool".into(), s(t)));
            }
            ctx.push(("args_json".into(), s(&args_json(args.as_ref()))));
            if tool.is_some() {
                resource_tags = args.as_ref().map(arg_tags).unwrap_or_default();
            }
        }
        Action::ProcessExec { path, argv } => {
            ctx.push(("path".into(), s(path)));
            ctx.push((
                "argv".into(),
                RestrictedExpression::new_set(argv.iter().map(|a| s(a))),
            ));
            ctx.push(("command".into(), s(&argv.join(" "))));
        }
        Action::FileAccess { path, access } => {
            ctx.push(("path".into(), s(path)));
            ctx.push(("access".into(), s(access.as_str())));
        }
        Action::NetConnect { addr, port, proto } => {
            ctx.push(("addr".into(), s(addr)));
            ctx.push(("port".into(), long(*port)));
            ctx.push(("proto".into(), s(proto.as_str())));
            let bare = addr.trim_start_matches('[').trim_end_matches(']');
            if bare.parse::<std::net::IpAddr>().is_ok() {
                ctx.push(("ip".into(), RestrictedExpression::new_ip(bare)));
            }
        }
    }
    let context = Context::from_pairs(ctx).map_err(|e| MappingError(e.to_string()))?;

    let mut entities = Vec::with_capacity(3);
    let team = agent.team.as_ref().map(|t| uid(&n.team, t));
    let labels = agent
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), s(v)))
        .collect::<Vec<_>>();
    entities.push(
        Entity::new_with_tags(principal.clone(), [], team.clone(), labels)
            .map_err(|e| MappingError(e.to_string()))?,
    );
    if let Some(team) = team {
        entities.push(Entity::with_uid(team));
    }
    if let Action::McpCall {
        server,
        tool: Some(_),
        ..
    } = action
    {
        entities.push(
            Entity::new_with_tags(
                resource.clone(),
                [],
                [uid(&n.mcp_server, server)],
                resource_tags,
            )
            .map_err(|e| MappingError(e.to_string()))?,
        );
    } else {
        // Always in the store, so `hasTag` on it is plainly false rather than undefined.
        entities.push(
            Entity::new_with_tags(resource.clone(), [], [], resource_tags)
                .map_err(|e| MappingError(e.to_string()))?,
        );
    }
    let entities =
        Entities::from_entities(entities, None).map_err(|e| MappingError(e.to_string()))?;
    Ok(CedarRequest {
        principal,
        action: action_uid,
        resource,
        context,
        entities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileAccessMode, NetProto};
    use cedar_policy::Request;

    fn all_kinds() -> Vec<Action> {
        let args: Map<String, Value> =
            serde_json::from_str(r#"{"q":"x","n":3,"nested":{"a":[1,2]}}"#).unwrap();
        vec![
            Action::ToolCall {
                tool: "search".into(),
                args: args.clone(),
            },
            Action::ModelCall {
                provider: "openai".into(),
                model: "gpt-4o".into(),
                input_tokens: Some(10),
                output_tokens: None,
                tools: vec!["search".into()],
            },
            Action::HttpRequest {
                method: "GET".into(),
                scheme: "https".into(),
                host: "example.com".into(),
                port: 443,
                path: "/a?b=c".into(),
            },
            Action::McpCall {
                server: "github".into(),
                method: "tools/call".into(),
                tool: Some("create_issue".into()),
                args: Some(args),
            },
            Action::McpCall {
                server: "github".into(),
                method: "tools/list".into(),
                tool: None,
                args: None,
            },
            Action::ProcessExec {
                path: "/bin/ls".into(),
                argv: vec!["ls".into(), "-l".into()],
            },
            Action::FileAccess {
                path: "/tmp/x".into(),
                access: FileAccessMode::Write,
            },
            Action::NetConnect {
                addr: "::1".into(),
                port: 22,
                proto: NetProto::Tcp,
            },
            Action::NetConnect {
                addr: "db.internal".into(),
                port: 5432,
                proto: NetProto::Tcp,
            },
        ]
    }

    /// Every request the mapping builds conforms to the shipped schema (context and entities).
    #[test]
    fn every_kind_maps_to_a_schema_valid_request() {
        let n = names().unwrap();
        let schema = crate::policy::compiled::schema().unwrap();
        let mut agent = Agent::new("a1").with_team("t1");
        agent.session_id = Some("s1".into());
        agent.labels.insert("env".into(), "prod".into());
        for action in all_kinds() {
            let r = build(
                n,
                &agent,
                &action,
                Layer::Sdk,
                &BudgetView::default(),
                1_767_614_400_000,
            )
            .unwrap();
            Request::new(r.principal, r.action, r.resource, r.context, Some(schema))
                .unwrap_or_else(|e| panic!("{action:?}: {e}"));
            let entities: Vec<Entity> = r.entities.iter().cloned().collect();
            Entities::from_entities(entities, Some(schema))
                .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        }
    }
}
