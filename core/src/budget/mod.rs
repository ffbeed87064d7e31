//! Budgets: limits on calls, tokens and cost per agent, team or globally, over a window.
//!
//! The rules come from `budgets.toml` beside the policies ([`BudgetConfig`]); usage lives in a
//! [`BudgetLedger`]; costs are priced from a [`PriceTable`].

mod config;
mod ledger;
mod prices;

pub use config::{BudgetConfig, BudgetRule, BudgetScope, Window};
pub use ledger::{BudgetBreach, BudgetLedger, BudgetStatus, BudgetView, UsageRow};
pub use prices::{ModelPrice, PriceTable};

use crate::error::Diagnostic;

/// 1-based line and column of byte `offset` in `text`, and the text of that line.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text
        .get(line_start..offset)
        .map_or(1, |s| s.chars().count() + 1);
    let line_text = text
        .get(line_start..)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    (line, column, line_text)
}

/// A diagnostic for `file` at byte `offset` of `text` (or without a position).
pub(crate) fn diagnostic_at(
    file: &str,
    text: &str,
    offset: Option<usize>,
    message: impl Into<String>,
    help: Option<String>,
) -> Diagnostic {
    let (line, column, source_line) = match offset {
        Some(o) => {
            let (l, c, s) = line_col(text, o);
            (Some(l), Some(c), Some(s))
        }
        None => (None, None, None),
    };
    Diagnostic {
        file: file.to_owned(),
        line,
        column,
        message: message.into(),
        help,
        source_line,
    }
}
