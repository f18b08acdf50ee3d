//! The limits an import enforces, as one table: ARM's own template limits (a template Azure
//! would refuse is refused here too) and vnetsim's bounds on evaluation (so no input, however
//! small, can make the evaluator exhaust memory or the stack). Exceeding any of them is
//! [`super::ImportError::LimitExceeded`] (`ARM_LIMIT_EXCEEDED`) naming the limit and the JSON
//! pointer, never an abort.
//!
//! ARM's limits: Learn, "ARM template best practices", section "Template limits"
//! (<https://learn.microsoft.com/azure/azure-resource-manager/templates/best-practices>, checked
//! 2025): 4 MB per template, 256 parameters, 512 variables (256 in older revisions of the page
//! and in the docs.azure.cn mirror; the current page allows 512), 800 resources including copy
//! count, 64 outputs, 24,576 characters in a template expression. The copy limit of 800
//! iterations is from Learn, "Resource iteration in ARM templates", section "Copy limits"
//! (<https://learn.microsoft.com/azure/azure-resource-manager/templates/copy-resources>: "The
//! count can't exceed 800"; the same for variable, property and output loops).

use std::fmt;

use serde::Serialize;

/// One limit of [`LIMITS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// ARM: bytes of one template's text.
    TemplateSize,
    /// ARM: parameters declared by one template.
    Parameters,
    /// ARM: variables declared by one template.
    Variables,
    /// ARM: resources of one template, copies included.
    Resources,
    /// ARM: outputs of one template.
    Outputs,
    /// ARM: iterations of one `copy` loop (resource, property or variable).
    CopyCount,
    /// ARM: characters of one template expression.
    ExpressionLength,
    /// vnetsim: nesting of one expression (calls, `.name` and `[index]` accessors).
    ExpressionDepth,
    /// vnetsim: nesting of evaluation (expressions within `variables()` / `parameters()`
    /// references within expressions, ...).
    EvaluationDepth,
    /// vnetsim: approximate in-memory bytes of one evaluated value.
    ValueSize,
    /// vnetsim: nesting of one evaluated value (arrays in arrays, objects in objects).
    ValueDepth,
    /// vnetsim: approximate bytes of all values evaluated for one template.
    EvaluatedTotal,
}

/// `(limit, maximum, what is counted)`, one row per [`Limit`].
pub const LIMITS: &[(Limit, usize, &str)] = &[
    (
        Limit::TemplateSize,
        4 * 1024 * 1024,
        "bytes of template text",
    ),
    (Limit::Parameters, 256, "parameters in a template"),
    (Limit::Variables, 512, "variables in a template"),
    (
        Limit::Resources,
        800,
        "resources in a template (copies included)",
    ),
    (Limit::Outputs, 64, "outputs in a template"),
    (Limit::CopyCount, 800, "iterations of a copy loop"),
    (
        Limit::ExpressionLength,
        24_576,
        "characters in a template expression",
    ),
    // Deep enough for any hand-written or generated template (a few levels are usual);
    // shallow enough that the parser and the drop of the tree stay far from the stack's end.
    (
        Limit::ExpressionDepth,
        100,
        "nesting levels of an expression",
    ),
    // Every expression node, JSON array or object and `variables()`/`parameters()` hop is one
    // level (templates use a few dozen). A reference hop takes about 9 KiB of stack in an
    // unoptimised build, so 128 levels stay within a 2 MiB thread stack (a reload runs on
    // Tokio's blocking pool) with margin; `sim/tests/arm.rs` checks it on such a thread.
    (Limit::EvaluationDepth, 128, "nesting levels of evaluation"),
    // As large as a whole template may be: no value of a deployable template is larger.
    (
        Limit::ValueSize,
        4 * 1024 * 1024,
        "bytes of one evaluated value",
    ),
    // serde_json's own recursion limit for JSON text.
    (
        Limit::ValueDepth,
        128,
        "nesting levels of an evaluated value",
    ),
    // 64 times a maximal template: room for copy loops and repeated references, while the
    // process stays well under a few hundred MB.
    (
        Limit::EvaluatedTotal,
        256 * 1024 * 1024,
        "bytes of values evaluated for a template",
    ),
];

// === impl Limit ===

impl Limit {
    /// The maximum.
    ///
    /// ```
    /// assert_eq!(sim::arm::Limit::Variables.maximum(), 512);
    /// assert_eq!(sim::arm::Limit::CopyCount.maximum(), 800);
    /// ```
    pub fn maximum(self) -> usize {
        self.row().1
    }

    /// What is counted ("variables in a template").
    pub fn what(self) -> &'static str {
        self.row().2
    }

    /// Whether Azure Resource Manager itself has this limit (else it is vnetsim's).
    pub fn is_arm(self) -> bool {
        self <= Limit::ExpressionLength
    }

    fn row(self) -> (Limit, usize, &'static str) {
        *LIMITS
            .iter()
            .find(|(l, _, _)| *l == self)
            .expect("LIMITS has a row for every Limit (checked by a test)")
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whose = if self.is_arm() { "ARM" } else { "vnetsim" };
        write!(
            f,
            "at most {} {} ({whose} limit)",
            self.maximum(),
            self.what()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_has_one_row() {
        let all = [
            Limit::TemplateSize,
            Limit::Parameters,
            Limit::Variables,
            Limit::Resources,
            Limit::Outputs,
            Limit::CopyCount,
            Limit::ExpressionLength,
            Limit::ExpressionDepth,
            Limit::EvaluationDepth,
            Limit::ValueSize,
            Limit::ValueDepth,
            Limit::EvaluatedTotal,
        ];
        assert_eq!(all.len(), LIMITS.len());
        for l in all {
            assert_eq!(LIMITS.iter().filter(|r| r.0 == l).count(), 1, "{l:?}");
        }
        assert_eq!(
            Limit::Variables.to_string(),
            "at most 512 variables in a template (ARM limit)"
        );
        assert!(!Limit::ValueSize.is_arm());
    }
}
