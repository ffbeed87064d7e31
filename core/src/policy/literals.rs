//! The literals a compiled policy mentions — string values and entity ids — read from each
//! policy's JSON form (EST), so Cedar has already resolved every escape.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::compiled::CompiledPolicy;

impl CompiledPolicy {
    /// Every string literal and entity id the policies mention, unescaped: `"10.0.0.5:5432"`
    /// in `resource == Addr::"10.0.0.5:5432"`, `"/usr/bin/nc"` in `context.path ==
    /// "/usr/bin/nc"`, the strings of sets and records, the arguments of extension functions,
    /// and `like` patterns without a wildcard. Annotations, attribute names and type names are
    /// not literals.
    pub fn literals(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for policy in self.full.policies() {
            if let Ok(est) = policy.to_json() {
                walk(&est, &mut out);
            }
        }
        out
    }
}

impl CompiledPolicy {
    /// Whether any policy reads the attribute or tag `name` (`context.port`, `has port`,
    /// `getTag("port")`): a layer that enumerates values of an attribute no policy reads may
    /// ask once and apply the answer to all of them.
    pub fn reads_attr(&self, name: &str) -> bool {
        self.full
            .policies()
            .any(|p| p.to_json().is_ok_and(|est| names_attr(&est, name)))
            || self.literals().contains(name)
    }
}

/// An EST node that reads attribute `name` (`{".": {"attr": name}}`, `{"has": …}`).
fn names_attr(v: &Json, name: &str) -> bool {
    match v {
        Json::Object(o) => o.iter().any(|(k, v)| {
            (k == "attr" && v.as_str() == Some(name)) || (k != "annotations" && names_attr(v, name))
        }),
        Json::Array(items) => items.iter().any(|e| names_attr(e, name)),
        _ => false,
    }
}

/// Collects the literals of an EST policy or expression.
fn walk(v: &Json, out: &mut BTreeSet<String>) {
    match v {
        Json::Object(o) => {
            for (k, v) in o {
                match k.as_str() {
                    "annotations" => {}
                    "Value" => value(v, out),
                    "entity" => uid(v, out),
                    "entities" => v.as_array().into_iter().flatten().for_each(|e| uid(e, out)),
                    "pattern" => pattern(v, out),
                    // A record's keys are attribute names.
                    "Record" => v
                        .as_object()
                        .into_iter()
                        .flat_map(|r| r.values())
                        .for_each(|e| walk(e, out)),
                    _ => walk(v, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|e| walk(e, out)),
        _ => {}
    }
}

/// A Cedar value in its JSON form.
fn value(v: &Json, out: &mut BTreeSet<String>) {
    match v {
        Json::String(s) => {
            out.insert(s.clone());
        }
        Json::Array(items) => items.iter().for_each(|e| value(e, out)),
        Json::Object(o) => {
            if let Some(e) = o.get("__entity") {
                uid(e, out);
            } else if let Some(x) = o.get("__extn") {
                x.get("arg").into_iter().for_each(|a| value(a, out));
                x.get("args").into_iter().for_each(|a| value(a, out));
            } else {
                o.values().for_each(|e| value(e, out));
            }
        }
        _ => {}
    }
}

/// An entity uid: `{"type": …, "id": …}`, possibly wrapped in `__entity`.
fn uid(v: &Json, out: &mut BTreeSet<String>) {
    let v = v.get("__entity").unwrap_or(v);
    if let Some(id) = v.get("id").and_then(Json::as_str) {
        out.insert(id.to_owned());
    }
}

/// A `like` pattern (one `Literal` per character, and `"Wildcard"`): a literal only when it has
/// no wildcard, i.e. it matches one string.
fn pattern(v: &Json, out: &mut BTreeSet<String>) {
    let mut text = String::new();
    for elem in v.as_array().into_iter().flatten() {
        match elem.get("Literal").and_then(Json::as_str) {
            Some(t) => text.push_str(t),
            None => return,
        }
    }
    out.insert(text);
}

impl CompiledPolicy {
    /// Whether some `forbid` could apply to actions of `kind`: its action scope is unscoped,
    /// names the kind, or names a group (conservatively, any `in` with another id). A layer
    /// that compiles forbids ahead of time (the kernel's maps) skips a kind for which this is
    /// false: no request of that kind can be forbidden.
    pub fn may_forbid(&self, kind: crate::ActionKind) -> bool {
        use cedar_policy::{ActionConstraint, Effect};
        let names = |uid: &cedar_policy::EntityUid| uid.id().unescaped() == kind.as_str();
        self.full.policies().any(|p| {
            p.effect() == Effect::Forbid
                && match p.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(uid) => names(&uid),
                    ActionConstraint::In(uids) => uids.iter().any(|u| {
                        names(u)
                            || crate::ActionKind::ALL
                                .iter()
                                .all(|k| u.id().unescaped() != k.as_str())
                    }),
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{CompiledPolicy, PolicyBundle};

    fn literals(text: &str) -> Vec<String> {
        let bundle = PolicyBundle {
            files: [("p.cedar".to_owned(), text.to_owned())].into(),
            ..PolicyBundle::default()
        };
        let policy = CompiledPolicy::compile(bundle).unwrap();
        policy.literals().into_iter().collect()
    }

    #[test]
    fn literals_come_unescaped_and_without_comments_or_annotations() {
        let text = r#"
            // "not-this"
            @id("not-an-id-either")
            @reason("nor \"this\"")
            forbid (principal, action == Action::"net_connect", resource == Addr::"10.0.0.5:5432");
            forbid (principal, action == Action::"net_connect", resource)
            when { context has ip && context.ip.isInRange(ip("192.168.0.0/16")) };
            forbid (principal, action == Action::"process_exec", resource)
            when { context.path == "/usr/bin/n\x63" || resource == Path::"/opt/a\"b\\c" };
            forbid (principal, action == Action::"file_access", resource)
            when { context.path like "/etc/sh*" || context.path like "/etc/\*exact" || ["\u{e9}t\u{e9}"].contains(context.access) };
        "#;
        assert_eq!(
            literals(text),
            vec![
                "/etc/*exact",
                "/opt/a\"b\\c",
                "/usr/bin/nc",
                "10.0.0.5:5432",
                "192.168.0.0/16",
                "file_access",
                "net_connect",
                "process_exec",
                "été",
            ]
        );
    }
}
