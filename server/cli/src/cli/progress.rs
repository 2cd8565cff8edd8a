//! The progress spinner of long commands: shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A spinner counting changes, labelled `verb`; hidden unless stderr is a terminal.
pub(super) fn changes(verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg} {pos} changes ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let bar = ProgressBar::new_spinner().with_style(style);
    bar.set_message(verb.to_owned());
    bar
}

/// A bar over db_versions of the other side, labelled `verb`; hidden unless stderr is a
/// terminal. Its message carries change counts.
pub(super) fn bar(length: u64, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(&format!(
        "{verb} [{{bar:30}}] {{pos}}/{{len}} db_versions, {{msg}} ({{elapsed}})"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(length).with_style(style)
}

/// A bar over `length` bytes (a spinner counting bytes when the length is unknown), labelled
/// `verb`; hidden unless stderr is a terminal.
pub(super) fn bytes(length: Option<u64>, verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (template, bar) = match length {
        Some(length) => (
            format!(
                "{verb} [{{bar:30}}] {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)"
            ),
            ProgressBar::new(length),
        ),
        None => (
            format!("{{spinner}} {verb} {{bytes}} ({{bytes_per_sec}})"),
            ProgressBar::new_spinner(),
        ),
    };
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.with_style(style)
}
