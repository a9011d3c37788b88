//! Plain-text tables for the operator commands: a header row and columns
//! padded to their widest cell; the last column is never padded.

use std::fmt::Write as _;

/// Rows of cells under upper-case headers.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table with a trailing newline.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                self.rows
                    .iter()
                    .map(|row| row[column].chars().count())
                    .chain([self.headers[column].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        let headers = self.headers.iter().map(|header| (*header).to_owned());
        for cells in std::iter::once(headers.collect::<Vec<_>>()).chain(self.rows.iter().cloned()) {
            let mut line = String::new();
            for (column, cell) in cells.iter().enumerate() {
                if column + 1 == cells.len() {
                    line.push_str(cell);
                } else {
                    write!(line, "{cell:<width$}  ", width = widths[column])
                        .expect("writing to a String cannot fail");
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_every_column_but_the_last() {
        let mut table = Table::new(&["NAME", "URL"]);
        table.row(vec!["github".into(), "http://a/b".into()]);
        table.row(vec!["x".into(), String::new()]);
        assert_eq!(table.render(), "NAME    URL\ngithub  http://a/b\nx\n");
    }
}
