//! Markdown tables and number formatting for the report.

/// A markdown table: a header row and data rows of preformatted cells.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table { header: header.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Appends a row (missing cells print empty).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as GitHub-flavoured markdown, columns padded to line up.
    pub fn render(&self) -> String {
        let cols = self.header.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let cell = |r: &Vec<String>, i: usize| r.get(i).cloned().unwrap_or_default();
        let width: Vec<usize> = (0..cols)
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|r| cell(r, i).chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let line = |r: &Vec<String>| {
            let cells: Vec<String> = (0..cols)
                .map(|i| {
                    let c = cell(r, i);
                    let pad = width[i] - c.chars().count();
                    // First column left-aligned, numbers right-aligned.
                    if i == 0 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = line(&self.header);
        let rule: Vec<String> = (0..cols)
            .map(|i| if i == 0 { "-".repeat(width[i]) } else { format!("{}:", "-".repeat(width[i] - 1)) })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// A rate with thousands separators and no decimals (`1,234,567`), or
/// with up to two significant decimals below 100.
pub fn rate(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A duration in the most readable unit: µs below 1 ms, ms below 10 s, else s.
pub fn dur(secs: f64) -> String {
    if !secs.is_finite() {
        "–".into()
    } else if secs < 1e-3 {
        format!("{:.2} µs", secs * 1e6)
    } else if secs < 10.0 {
        format!("{:.1} ms", secs * 1e3)
    } else {
        format!("{secs:.1} s")
    }
}

/// A ratio (`1.23×`).
pub fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}×")
    } else {
        "–".into()
    }
}

/// Bytes in MiB with one decimal (or KiB below 1 MiB).
pub fn bytes(n: u64) -> String {
    if n < 1 << 20 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rate(1_234_567.4), "1,234,567");
        assert_eq!(rate(123.0), "123");
        assert_eq!(rate(12.34), "12.3");
        assert_eq!(dur(0.000_002_5), "2.50 µs");
        assert_eq!(dur(0.25), "250.0 ms");
        let mut t = Table::new(["a", "b"]);
        t.row(["x", "1"]);
        assert_eq!(t.render(), "| a   |   b |\n| --- | --: |\n| x   |   1 |\n");
    }
}
