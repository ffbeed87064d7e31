use std::collections::BTreeMap;

use serde::Deserialize;

use super::diagnostic_at;
use crate::error::Diagnostic;
use crate::model::Usage;

const SHIPPED: &str = include_str!("../../data/prices.toml");

/// Price of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Prompt tokens.
    pub input_per_mtok: f64,
    /// Completion tokens.
    pub output_per_mtok: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

/// Model price table: the shipped one, with a bundle's `prices.toml` layered on top.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

impl Default for PriceTable {
    fn default() -> Self {
        // The shipped table is checked by a unit test; an unparsable one yields an empty table.
        let models = toml::from_str::<RawTable>(SHIPPED)
            .map(|t| t.models)
            .unwrap_or_default();
        PriceTable { models }
    }
}

impl PriceTable {
    /// The shipped table with the entries of `override_text` (a `prices.toml`) replacing or
    /// adding to it.
    pub fn with_overrides(file: &str, override_text: &str) -> Result<Self, Vec<Diagnostic>> {
        let raw: RawTable = toml::from_str(override_text).map_err(|e| {
            vec![diagnostic_at(
                file,
                override_text,
                e.span().map(|s| s.start),
                e.message(),
                None,
            )]
        })?;
        let mut table = PriceTable::default();
        for (model, price) in raw.models {
            let ok = |p: f64| p.is_finite() && p >= 0.0;
            if !ok(price.input_per_mtok) || !ok(price.output_per_mtok) {
                return Err(vec![diagnostic_at(
                    file,
                    override_text,
                    override_text.find(&model),
                    format!("price of `{model}` must be finite and ≥ 0"),
                    None,
                )]);
            }
            table.models.insert(model, price);
        }
        Ok(table)
    }

    /// The price of `model`: exact entry, else the longest entry that prefixes it; a
    /// `provider/model` id is looked up by its last segment.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        let model = model.rsplit('/').next().unwrap_or(model);
        if let Some(p) = self.models.get(model) {
            return Some(*p);
        }
        self.models
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    /// Cost of `usage` in USD: its own `cost_usd` if set, else priced from the table; `None`
    /// when the model has no price.
    pub fn cost_usd(&self, model: Option<&str>, usage: &Usage) -> Option<f64> {
        if let Some(c) = usage.cost_usd {
            return (c.is_finite() && c >= 0.0).then_some(c);
        }
        let p = self.price(model?)?;
        let per_million = usage.input_tokens as f64 * p.input_per_mtok
            + usage.output_tokens as f64 * p.output_per_mtok;
        Some(per_million / 1e6)
    }

    /// [`PriceTable::cost_usd`] in micro-USD (what budgets count), rounded.
    pub fn cost_micros(&self, model: Option<&str>, usage: &Usage) -> Option<u64> {
        self.cost_usd(model, usage)
            .map(|c| (c * 1_000_000.0).round() as u64)
    }

    /// Number of priced models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True if no model is priced.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_and_prices_by_prefix() {
        let t = PriceTable::default();
        assert!(t.len() >= 10, "shipped price table failed to parse");
        let p = t.price("gpt-4o-2024-08-06").map(|p| p.input_per_mtok);
        assert_eq!(p, Some(2.5));
        assert_eq!(t.price("gpt-4o-mini").map(|p| p.input_per_mtok), Some(0.15));
        assert_eq!(
            t.price("openai/gpt-4o").map(|p| p.output_per_mtok),
            Some(10.0)
        );
        assert_eq!(t.price("unknown-model"), None);
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cost_usd: None,
        };
        assert_eq!(t.cost_micros(Some("gpt-4o"), &usage), Some(7_500_000));
    }

    #[test]
    fn overrides_replace_entries_and_reject_negative_prices() {
        let t = PriceTable::with_overrides(
            "prices.toml",
            "[models.\"gpt-4o\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
        );
        assert_eq!(
            t.ok()
                .and_then(|t| t.price("gpt-4o"))
                .map(|p| p.input_per_mtok),
            Some(1.0)
        );
        let bad = PriceTable::with_overrides(
            "prices.toml",
            "[models.m]\ninput_per_mtok = -1.0\noutput_per_mtok = 2.0\n",
        );
        assert!(bad.is_err());
    }
}
