//! kubectl's column layout.
//!
//! kubectl writes every table through Go's `text/tabwriter` configured as
//! `NewWriter(out, 6 /*minwidth*/, 4 /*tabwidth*/, 3 /*padding*/, ' ', RememberWidths)`:
//! cells are tab-terminated, every column but the last is left-aligned and
//! padded to `max(widest cell + 3, 6)`, and the last cell of a line is written
//! as-is (so lines never end in padding, unless that last cell is empty).
//!
//! This is a small hand-written tabwriter rather than comfy-table, because
//! comfy-table cannot be made byte-identical:
//! - it measures cells by terminal display width (`unicode-width`), while Go's
//!   tabwriter counts runes, so e.g. CJK or combining characters pad differently;
//! - it pads the last column too, and `trim_fmt()` strips *all* trailing
//!   whitespace, which also eats the previous column's padding that Go keeps
//!   when a row's last cell is empty.

use crate::core::pods::PodRow;

const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

/// Renders `headers` and `rows` exactly like kubectl's table printer.
///
/// Every line, the header included, ends with `\n`. Rows are fitted to the
/// header count: extra cells are dropped (as kubectl does) and missing ones
/// are printed empty (kubectl's printers never produce short rows).
pub fn kubectl_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    if columns == 0 {
        return String::new();
    }
    let lines: Vec<Vec<&str>> = std::iter::once(headers.to_vec())
        .chain(rows.iter().map(|row| {
            (0..columns)
                .map(|i| row.get(i).map_or("", String::as_str))
                .collect()
        }))
        .collect();

    // Widths for all columns but the last, which is never padded.
    let widths: Vec<usize> = (0..columns - 1)
        .map(|i| {
            lines
                .iter()
                .map(|line| runes(line[i]) + PADDING)
                .fold(MIN_WIDTH, usize::max)
        })
        .collect();

    let mut out = String::new();
    for line in &lines {
        for (cell, width) in line.iter().zip(&widths) {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', width - runes(cell)));
        }
        out.push_str(line[columns - 1]);
        out.push('\n');
    }
    out
}

/// The `kubectl get pods` table: `NAME READY STATUS RESTARTS AGE`, plus the
/// `-o wide` columns, plus a leading `NAMESPACE` column (as with `-A`) when
/// `namespaces` is given; `namespaces[i]` belongs to `rows[i]`.
pub fn pod_table(rows: &[PodRow], wide: bool, namespaces: Option<&[String]>) -> String {
    let mut headers = Vec::with_capacity(10);
    if namespaces.is_some() {
        headers.push("NAMESPACE");
    }
    headers.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    if wide {
        headers.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    }

    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut cells = Vec::with_capacity(headers.len());
            if let Some(ns) = namespaces {
                cells.push(ns.get(i).cloned().unwrap_or_default());
            }
            cells.extend([&r.name, &r.ready, &r.status, &r.restarts, &r.age].map(Clone::clone));
            if wide {
                cells.extend([&r.ip, &r.node, &r.nominated_node, &r.readiness_gates].map(Clone::clone));
            }
            cells
        })
        .collect();
    kubectl_table(&headers, &cells)
}

/// Go's tabwriter counts cell width in runes (`utf8.RuneCount`).
fn runes(s: &str) -> usize {
    s.chars().count()
}

/// Our own tables end lines at the last non-empty cell (kubectl's pod
/// table never has an empty last column, so it is left byte-exact).
pub fn trim_lines(table: &str) -> String {
    table.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(headers: &[&str], rows: &[&[&str]]) -> String {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        kubectl_table(headers, &rows)
    }

    #[test]
    fn kubectl_get_pods_layout() {
        let out = table(
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &[
                &["milvus-proxy-7d9f", "1/1", "Running", "0", "10m"],
                &[
                    "milvus-querynode-0",
                    "0/1",
                    "CrashLoopBackOff",
                    "5 (2m30s ago)",
                    "3d4h",
                ],
            ],
        );
        assert_eq!(
            out,
            "NAME                 READY   STATUS             RESTARTS        AGE\n\
             milvus-proxy-7d9f    1/1     Running            0               10m\n\
             milvus-querynode-0   0/1     CrashLoopBackOff   5 (2m30s ago)   3d4h\n"
        );
    }

    #[test]
    fn narrow_columns_get_min_width_six() {
        // Widest cells of 1..3 runes: max(w + 3, 6) is 6 up to w = 3.
        let out = table(&["A", "BB", "CCC", "D"], &[&["x", "y", "z", "w"]]);
        assert_eq!(out, "A     BB    CCC   D\nx     y     z     w\n");
        // Four runes is the first width past the minimum.
        assert_eq!(table(&["ABCD", "E"], &[]), "ABCD   E\n");
    }

    #[test]
    fn last_column_is_not_padded() {
        let out = table(&["NAME", "AGE"], &[&["a", "1d"], &["b", "<unknown>"]]);
        assert_eq!(out, "NAME   AGE\na      1d\nb      <unknown>\n");
        assert!(out.lines().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn empty_cells() {
        // An empty middle cell is pure padding; an all-empty column still
        // takes the minimum width.
        let out = table(&["NAME", "", "IP"], &[&["pod", "", "10.0.0.1"], &["p", "", ""]]);
        assert_eq!(out, "NAME         IP\npod          10.0.0.1\np            \n");
        // An empty last cell keeps the previous column's padding (tabwriter
        // only skips padding on the last cell itself).
        assert_eq!(table(&["A", "B"], &[&["x", ""]]), "A     B\nx     \n");
    }

    #[test]
    fn widths_count_runes_not_bytes_or_display_columns() {
        let out = table(
            &["NAME", "STATUS"],
            &[&["café-milvus", "Running"], &["数据库", "Pending"]],
        );
        // "café-milvus" is 11 runes (12 bytes) => width 14; "数据库" is
        // 3 runes (6 display columns) and is padded by 11 spaces.
        assert_eq!(
            out,
            "NAME          STATUS\n\
             café-milvus   Running\n\
             数据库           Pending\n"
        );
    }

    #[test]
    fn rows_are_fitted_to_headers() {
        let out = table(&["A", "B"], &[&["x"], &["1", "2", "extra"]]);
        assert_eq!(out, "A     B\nx     \n1     2\n");
        assert_eq!(table(&[], &[&["x"]]), "");
    }

    fn sample_row() -> PodRow {
        PodRow {
            name: "milvus-standalone-0".into(),
            ready: "1/1".into(),
            status: "Running".into(),
            restarts: "0".into(),
            age: "5d".into(),
            ip: "10.244.0.12".into(),
            node: "kind-control-plane".into(),
            nominated_node: "<none>".into(),
            readiness_gates: "<none>".into(),
        }
    }

    #[test]
    fn pod_table_plain_wide_and_all_namespaces() {
        let rows = [sample_row()];
        assert_eq!(
            pod_table(&rows, false, None),
            "NAME                  READY   STATUS    RESTARTS   AGE\n\
             milvus-standalone-0   1/1     Running   0          5d\n"
        );
        assert_eq!(
            pod_table(&rows, true, None),
            "NAME                  READY   STATUS    RESTARTS   AGE   IP            NODE                 NOMINATED NODE   READINESS GATES\n\
             milvus-standalone-0   1/1     Running   0          5d    10.244.0.12   kind-control-plane   <none>           <none>\n"
        );
        assert_eq!(
            pod_table(&rows, false, Some(&["milvus".to_string()])),
            "NAMESPACE   NAME                  READY   STATUS    RESTARTS   AGE\n\
             milvus      milvus-standalone-0   1/1     Running   0          5d\n"
        );
    }

    #[test]
    fn pod_table_without_rows_prints_header() {
        assert_eq!(
            pod_table(&[], false, None),
            "NAME   READY   STATUS   RESTARTS   AGE\n"
        );
    }
}
