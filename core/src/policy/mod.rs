//! Policy: Cedar policy sets, their schema, the Action → request mapping, and slicing.

mod bundle;
mod compiled;
pub(crate) mod fast;
pub(crate) mod index;
mod literals;
pub(crate) mod request;

pub use bundle::{BUDGETS_FILE, PRICES_FILE, PolicyBundle};
pub use compiled::{CompiledPolicy, PolicyInfo, SCHEMA_TEXT};
