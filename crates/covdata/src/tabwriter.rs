//! Go's `text/tabwriter`, as `go tool covdata func` configures it:
//! `NewWriter(w, minwidth 1, tabwidth 8, padding 1, padchar '\t', flags 0)`.
//!
//! Cells are terminated by `\t` (hard) or `\v` (soft); lines by `\n` or
//! `\f` (which also flushes); a line with a single cell ends a block. Column
//! widths are computed per block of consecutive lines that have a cell in
//! that column, as in Go, so names containing tabs or vertical tabs lay out
//! exactly as the Go tool lays them out. Widths count UTF-8 runes (an invalid
//! byte counts as one). The escape byte 0xFF brackets text that is not
//! interpreted.

const MIN_WIDTH: usize = 1;
const TAB_WIDTH: usize = 8;
const PADDING: usize = 1;
const ESCAPE: u8 = 0xFF;

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    size: usize,
    width: usize,
}

#[derive(Debug, Default)]
struct Writer {
    buf: Vec<u8>,
    pos: usize,
    cell: Cell,
    lines: Vec<Vec<Cell>>,
    widths: Vec<usize>,
    in_escape: bool,
    out: Vec<u8>,
}

/// Formats `text` as Go's tabwriter would (including the final flush).
pub fn format(text: &[u8]) -> Vec<u8> {
    let mut w = Writer {
        lines: vec![Vec::new()],
        ..Default::default()
    };
    w.write(text);
    w.flush();
    w.out
}

fn rune_count(b: &[u8]) -> usize {
    // Go's utf8.RuneCount: every invalid byte is one rune.
    let mut n = 0;
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => return n + s.chars().count(),
            Err(e) => {
                let good = e.valid_up_to();
                n += std::str::from_utf8(&rest[..good]).map_or(good, |s| s.chars().count());
                let bad = e.error_len().unwrap_or(rest.len() - good).max(1);
                n += bad;
                rest = &rest[good + bad..];
            }
        }
    }
    n
}

impl Writer {
    fn append(&mut self, text: &[u8]) {
        self.buf.extend_from_slice(text);
        self.cell.size += text.len();
    }

    fn update_width(&mut self) {
        self.cell.width += rune_count(&self.buf[self.pos..]);
        self.pos = self.buf.len();
    }

    /// Ends the current cell (`\t` and `\v` terminate alike here: the soft/hard
    /// distinction only matters with `DiscardEmptyColumns`, which covdata does
    /// not set).
    fn terminate_cell(&mut self) -> usize {
        let cell = std::mem::take(&mut self.cell);
        let line = self.lines.last_mut().expect("always one line");
        line.push(cell);
        line.len()
    }

    fn end_escape(&mut self) {
        self.update_width();
        // The escape characters are passed through but not counted.
        self.cell.width = self.cell.width.saturating_sub(2);
        self.in_escape = false;
    }

    fn write(&mut self, text: &[u8]) {
        let mut n = 0;
        for (i, &ch) in text.iter().enumerate() {
            if self.in_escape {
                if ch == ESCAPE {
                    self.append(&text[n..=i]);
                    n = i + 1;
                    self.end_escape();
                }
                continue;
            }
            match ch {
                b'\t' | b'\x0b' | b'\n' | b'\x0c' => {
                    self.append(&text[n..i]);
                    self.update_width();
                    n = i + 1;
                    let ncells = self.terminate_cell();
                    if ch == b'\n' || ch == b'\x0c' {
                        self.lines.push(Vec::new());
                        if ch == b'\x0c' || ncells == 1 {
                            self.flush();
                        }
                    }
                }
                ESCAPE => {
                    self.append(&text[n..i]);
                    self.update_width();
                    n = i;
                    self.in_escape = true;
                }
                _ => {}
            }
        }
        self.append(&text[n..]);
    }

    fn flush(&mut self) {
        if self.cell.size > 0 {
            if self.in_escape {
                self.end_escape();
            }
            self.terminate_cell();
        }
        let nlines = self.lines.len();
        self.format(0, 0, nlines);
        self.buf.clear();
        self.pos = 0;
        self.cell = Cell::default();
        self.lines = vec![Vec::new()];
    }

    fn format(&mut self, pos0: usize, mut line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            pos = self.write_lines(pos, line0, this);
            line0 = this;
            let mut width = MIN_WIDTH;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                let c = line[column];
                width = width.max(c.width + PADDING);
                this += 1;
            }
            self.widths.push(width);
            pos = self.format(pos, line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(pos, line0, line1)
    }

    fn write_padding(&mut self, textw: usize, cellw: usize) {
        let cellw = cellw.div_ceil(TAB_WIDTH) * TAB_WIDTH;
        let n = cellw.saturating_sub(textw);
        for _ in 0..n.div_ceil(TAB_WIDTH) {
            self.out.push(b'\t');
        }
    }

    fn write_lines(&mut self, mut pos: usize, line0: usize, line1: usize) -> usize {
        for i in line0..line1 {
            let line = self.lines[i].clone();
            for (j, c) in line.iter().enumerate() {
                if c.size > 0 {
                    let end = pos + c.size;
                    self.out.extend_from_slice(&self.buf[pos..end]);
                    pos = end;
                }
                if j < self.widths.len() {
                    self.write_padding(c.width, self.widths[j]);
                }
            }
            if i + 1 == self.lines.len() {
                let end = pos + self.cell.size;
                self.out
                    .extend_from_slice(&self.buf[pos..end.min(self.buf.len())]);
                pos = end;
            } else {
                self.out.push(b'\n');
            }
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(s: &str) -> String {
        String::from_utf8(format(s.as_bytes())).expect("utf8")
    }

    #[test]
    fn two_columns_like_covdata_func() {
        let s = fmt(
            "example.com/app/main.go:12:\t*T.Inc\t100.0%\nexample.com/app/util/util.go:12:\tUnused\t0.0%\ntotal\t(statements)\t75.0%\n",
        );
        assert_eq!(
            s,
            "example.com/app/main.go:12:\t\t*T.Inc\t\t100.0%\nexample.com/app/util/util.go:12:\tUnused\t\t0.0%\ntotal\t\t\t\t\t(statements)\t75.0%\n"
        );
    }

    #[test]
    fn tabs_and_vtabs_inside_names() {
        // A name with \t and \v, checked against Go's output.
        let s = fmt(
            "example.com/syn/tab/c d:e.go:1:\twe\tird\u{b}name\t100.0%\ntotal\t(statements)\t50.0%\n",
        );
        assert_eq!(
            s.lines().next(),
            Some("example.com/syn/tab/c d:e.go:1:\twe\t\tird\tname\t100.0%")
        );
    }
}
