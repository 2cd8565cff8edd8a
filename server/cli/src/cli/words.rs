//! Counts in words: `1 row`, `2 rows`, `0 rows`.

/// `n` and the noun, singular when `n` is one.
pub(super) fn count<N>(n: N, singular: &str, plural: &str) -> String
where
    N: std::fmt::Display + PartialEq + From<u8>,
{
    if n == N::from(1) {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(1u64, "row", "rows"), "1 row");
        assert_eq!(count(0u64, "row", "rows"), "0 rows");
        assert_eq!(count(2u64, "change", "changes"), "2 changes");
    }
}
