//! Slicing: evaluate only the policies whose scope can match a request.
//!
//! Cedar evaluates every policy of a set. A policy whose scope pins the principal (`==`),
//! the action or the resource (`==`) to something other than the request's cannot match, and
//! Cedar checks the scope before the conditions, so such a policy can neither apply nor raise
//! an error: leaving it out never changes the decision (`tests/slicing.rs` checks this against
//! the full set). Scopes with `in`, `is` or no constraint are kept in every slice they may match.

use std::sync::{Arc, RwLock};

// The maps are keyed by what the policies name and looked up on every decision: a fast
// hasher (seeded per process), not SipHash.
use foldhash::{HashMap, HashMapExt};

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicySet, PrincipalConstraint, ResourceConstraint,
};

use super::fast::{self, Expr};
use super::request::Names;
use crate::model::{ActionKind, Layer};

/// Most cached slices per compiled policy set before the cache is emptied.
const MAX_CACHED_SLICES: usize = 16_384;

#[derive(Default)]
struct ByResource {
    eq: HashMap<EntityUid, u32>,
    any: Option<u32>,
}

#[derive(Default)]
struct KindIndex {
    by_principal: HashMap<EntityUid, ByResource>,
    any_principal: ByResource,
}

/// The policies that can apply to one kind of request: as a Cedar set, and as indexes into
/// [`PolicyIndex::policy`] for each layer, without those the kind and the layer make false
/// ([`Indexed::condition_for`]).
pub(crate) struct Slice {
    pub set: PolicySet,
    by_layer: [Vec<usize>; Layer::ALL.len()],
}

impl Slice {
    /// The members the fast path evaluates for a request seen by `layer`.
    pub(crate) fn members(&self, layer: Layer) -> &[usize] {
        self.by_layer.get(layer.index()).map_or(&[], Vec::as_slice)
    }
}

/// One indexed policy: its id, effect and fast-path condition.
pub(crate) struct Indexed {
    pub id: String,
    pub forbid: bool,
    pub condition: Expr,
    /// The condition for requests of each action kind and layer, where they simplify it
    /// ([`fast::for_class`]), at [`class`].
    by_class: [Option<Expr>; CLASSES],
}

/// How many (action kind, layer) classes of requests there are.
const CLASSES: usize = ActionKind::ALL.len() * Layer::ALL.len();

/// The position of (`kind`, `layer`) among the classes.
fn class(kind: ActionKind, layer: Layer) -> usize {
    kind.index() * Layer::ALL.len() + layer.index()
}

impl Indexed {
    /// The condition to evaluate on a request of `kind` seen by `layer`.
    pub(crate) fn condition_for(&self, kind: ActionKind, layer: Layer) -> &Expr {
        match self.by_class.get(class(kind, layer)) {
            Some(Some(e)) => e,
            _ => &self.condition,
        }
    }

    /// Whether the policy can be satisfied by a request of `kind` seen by `layer` at all.
    fn may_apply(&self, kind: ActionKind, layer: Layer) -> bool {
        !matches!(
            self.condition_for(kind, layer),
            Expr::Lit(fast::Lit::Bool(false))
        )
    }
}

/// Policies grouped by (action kind, principal `==` uid or any, resource `==` uid or any).
pub(crate) struct PolicyIndex {
    policies: Vec<Policy>,
    indexed: Vec<Indexed>,
    groups: Vec<Vec<usize>>,
    kinds: [KindIndex; 7],
    cache: RwLock<HashMap<[u32; 4], Arc<Slice>>>,
    /// The floating literals of the set's `like` patterns, searched once per request.
    pub(crate) literals: Option<fast::Literals>,
}

const NONE: u32 = u32::MAX;

impl PolicyIndex {
    /// Indexes `policies` (templates are rejected before this point).
    pub(crate) fn build(names: &Names, policies: Vec<Policy>) -> Self {
        let mut conditions: Vec<Expr> = policies
            .iter()
            .map(|p| fast::compile(p, &names.actions))
            .collect();
        let literals = fast::Literals::assign(&mut conditions);
        let indexed = policies
            .iter()
            .zip(conditions)
            .map(|(p, condition)| Indexed {
                id: p.id().to_string(),
                forbid: p.effect() == cedar_policy::Effect::Forbid,
                by_class: std::array::from_fn(|c| {
                    let kind = ActionKind::ALL.get(c / Layer::ALL.len())?;
                    let layer = Layer::ALL.get(c % Layer::ALL.len())?;
                    fast::for_class(&condition, *kind, *layer)
                }),
                condition,
            })
            .collect();
        let mut index = PolicyIndex {
            policies,
            indexed,
            groups: Vec::new(),
            kinds: Default::default(),
            cache: RwLock::new(HashMap::new()),
            literals,
        };
        for (i, policy) in index.policies.iter().enumerate() {
            let principal = match policy.principal_constraint() {
                PrincipalConstraint::Eq(uid) => Some(uid),
                _ => None,
            };
            let resource = match policy.resource_constraint() {
                ResourceConstraint::Eq(uid) => Some(uid),
                _ => None,
            };
            let kinds: Vec<usize> = match policy.action_constraint() {
                ActionConstraint::Any => (0..7).collect(),
                ActionConstraint::Eq(a) => kind_of(names, &a).into_iter().collect(),
                ActionConstraint::In(list) => {
                    let mut ks: Vec<usize> = Vec::new();
                    for a in &list {
                        match kind_of(names, a) {
                            Some(k) => ks.push(k),
                            // An action group we do not know: keep the policy everywhere.
                            None => ks = (0..7).collect(),
                        }
                    }
                    ks.sort_unstable();
                    ks.dedup();
                    ks
                }
            };
            for k in kinds {
                let Some(kind_index) = index.kinds.get_mut(k) else {
                    continue;
                };
                let by_resource = match &principal {
                    Some(p) => kind_index.by_principal.entry(p.clone()).or_default(),
                    None => &mut kind_index.any_principal,
                };
                let slot = match &resource {
                    Some(r) => by_resource.eq.entry(r.clone()).or_insert(NONE),
                    None => by_resource.any.get_or_insert(NONE),
                };
                if *slot == NONE {
                    *slot = u32::try_from(index.groups.len()).unwrap_or(NONE - 1);
                    index.groups.push(Vec::new());
                }
                if let Some(g) = index.groups.get_mut(*slot as usize) {
                    g.push(i);
                }
            }
        }
        index
    }

    /// The policies that can apply to `principal` doing `kind` on `resource`.
    pub(crate) fn slice(
        &self,
        kind: ActionKind,
        principal: &EntityUid,
        resource: &EntityUid,
    ) -> Arc<Slice> {
        let mut key = [NONE; 4];
        if let Some(ki) = self.kinds.get(kind.index()) {
            let pick = |br: &ByResource| {
                [
                    br.eq.get(resource).copied().unwrap_or(NONE),
                    br.any.unwrap_or(NONE),
                ]
            };
            let [a, b] = ki.by_principal.get(principal).map_or([NONE, NONE], pick);
            let [c, d] = pick(&ki.any_principal);
            key = [a, b, c, d];
        }
        if let Some(set) = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Arc::clone(set);
        }
        let mut members: Vec<usize> = key
            .iter()
            .filter(|g| **g != NONE)
            .filter_map(|g| self.groups.get(*g as usize))
            .flatten()
            .copied()
            .collect();
        members.sort_unstable();
        members.dedup();
        let mut set = PolicySet::new();
        for m in &members {
            if let Some(p) = self.policies.get(*m) {
                // Ids are unique in the full set, so adding to a subset cannot collide.
                let _ = set.add(p.clone());
            }
        }
        let by_layer = Layer::ALL.map(|layer| {
            let applies = |m: &&usize| {
                self.indexed
                    .get(**m)
                    .is_none_or(|p| p.may_apply(kind, layer))
            };
            members.iter().filter(applies).copied().collect()
        });
        let set = Arc::new(Slice { set, by_layer });
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_SLICES {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&set));
        set
    }
}

impl PolicyIndex {
    /// Facts about indexed policy `i`.
    pub(crate) fn policy(&self, i: usize) -> Option<&Indexed> {
        self.indexed.get(i)
    }
}

fn kind_of(names: &Names, action: &EntityUid) -> Option<usize> {
    names.actions.iter().position(|a| a == action)
}
