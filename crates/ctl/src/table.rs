//! `olekukonko/tablewriter` as etcdctl's table printer uses it: upper-case
//! centered headers, right-aligned cells, cells wrapped at 30 columns
//! (minimal raggedness, words never split).

const MAX_ROW_WIDTH: usize = 30;

fn width(s: &str) -> usize {
    s.chars().count()
}

/// tablewriter's `WrapString`.
fn wrap_string(s: &str, lim: usize) -> Vec<String> {
    let words: Vec<&str> = s.split(' ').collect();
    let mut lim = lim;
    for w in &words {
        lim = lim.max(width(w));
    }
    wrap_words(&words, 1, lim, 100_000)
        .into_iter()
        .map(|l| l.join(" "))
        .collect()
}

/// tablewriter's `WrapWords`: line breaks with minimal raggedness.
fn wrap_words<'a>(words: &[&'a str], spc: usize, lim: usize, pen: i64) -> Vec<Vec<&'a str>> {
    let n = words.len();
    let mut length = vec![vec![0i64; n]; n];
    for i in 0..n {
        length[i][i] = width(words[i]) as i64;
        for j in i + 1..n {
            length[i][j] = length[i][j - 1] + spc as i64 + width(words[j]) as i64;
        }
    }
    let lim = lim as i64;
    let mut nbrk = vec![0usize; n];
    let mut cost = vec![i32::MAX as i64; n];
    for i in (0..n).rev() {
        if length[i][n - 1] <= lim {
            cost[i] = 0;
            nbrk[i] = n;
        } else {
            for j in i + 1..n {
                let d = lim - length[i][j - 1];
                let mut c = d * d + cost[j];
                if length[i][j - 1] > lim {
                    c += pen;
                }
                if c < cost[i] {
                    cost[i] = c;
                    nbrk[i] = j;
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut i = 0;
    while i < n {
        lines.push(words[i..nbrk[i]].to_vec());
        i = nbrk[i];
    }
    lines
}

/// tablewriter's `parseDimension`: the cell's lines and its width.
fn cell_lines(s: &str) -> (Vec<String>, usize) {
    let raw: Vec<&str> = s.split('\n').collect();
    let mut max_w = raw.iter().map(|l| width(l)).max().unwrap_or(0);
    if max_w > MAX_ROW_WIDTH {
        max_w = MAX_ROW_WIDTH;
    }
    let para = raw.join(" ");
    let lines = wrap_string(&para, max_w);
    let mut new_w = max_w;
    for l in &lines {
        new_w = new_w.max(width(l));
    }
    (lines, new_w)
}

fn title(s: &str) -> String {
    s.replace('_', " ").trim().to_uppercase()
}

fn pad_center(s: &str, w: usize) -> String {
    let gap = w.saturating_sub(width(s));
    let left = gap / 2;
    format!("{}{}{}", " ".repeat(left), s, " ".repeat(gap - left))
}

fn pad_left(s: &str, w: usize) -> String {
    format!("{}{}", " ".repeat(w.saturating_sub(width(s))), s)
}

/// Renders a table as etcdctl prints it.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let ncol = header.len();
    let mut cs = vec![0usize; ncol];
    let hdr: Vec<(Vec<String>, usize)> = header.iter().map(|h| cell_lines(h)).collect();
    for (i, (_, w)) in hdr.iter().enumerate() {
        cs[i] = cs[i].max(*w);
    }
    let cells: Vec<Vec<(Vec<String>, usize)>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell_lines(c)).collect())
        .collect();
    for r in &cells {
        for (i, (_, w)) in r.iter().enumerate() {
            if i < ncol {
                cs[i] = cs[i].max(*w);
            }
        }
    }
    let line = {
        let mut s = String::from("+");
        for w in &cs {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let mut out = String::new();
    out.push_str(&line);
    let hmax = hdr.iter().map(|(l, _)| l.len()).max().unwrap_or(1);
    for x in 0..hmax {
        out.push('|');
        for (y, (l, _)) in hdr.iter().enumerate() {
            let h = l.get(x).map(|s| title(s)).unwrap_or_default();
            out.push(' ');
            out.push_str(&pad_center(&h, cs[y]));
            out.push_str(" |");
        }
        out.push('\n');
    }
    out.push_str(&line);
    for r in &cells {
        let max = r.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for x in 0..max {
            for (y, (l, _)) in r.iter().enumerate() {
                out.push_str("| ");
                let s = l.get(x).map(String::as_str).unwrap_or("  ");
                out.push_str(&pad_left(s, cs[y]));
                out.push(' ');
            }
            out.push_str("|\n");
        }
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_table() {
        let t = render(
            &[
                "ID",
                "Status",
                "Name",
                "Peer Addrs",
                "Client Addrs",
                "Is Learner",
            ],
            &[vec![
                "bdae9bbc11dd390d".into(),
                "started".into(),
                "e0".into(),
                "http://127.0.0.1:23801".into(),
                "http://127.0.0.1:23791".into(),
                "false".into(),
            ]],
        );
        let want = "\
+------------------+---------+------+------------------------+------------------------+------------+
|        ID        | STATUS  | NAME |       PEER ADDRS       |      CLIENT ADDRS      | IS LEARNER |
+------------------+---------+------+------------------------+------------------------+------------+
| bdae9bbc11dd390d | started |   e0 | http://127.0.0.1:23801 | http://127.0.0.1:23791 |      false |
+------------------+---------+------+------------------------+------------------------+------------+
";
        assert_eq!(t, want);
    }

    #[test]
    fn wraps_long_cells() {
        let t = render(
            &["endpoint", "error"],
            &[vec![
                "a".into(),
                "rpc error: code = Unavailable desc = connection refused".into(),
            ]],
        );
        for l in t.lines() {
            assert!(l.len() <= 50, "{t}");
        }
        assert!(t.contains("rpc error"), "{t}");
    }
}
