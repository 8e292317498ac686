pub mod config;
pub mod errors;
pub mod keys;
pub mod member_types;
pub mod ops;
pub mod payments;
pub mod records;
pub mod types;

/// Candid types carry `//` comments, not `///` doc comments: the Candid derive turns doc
/// comments into strings and maps it rebuilds on every encode and decode of the type
/// (`_ty_doc`), which cost get_vault ~45 000 instructions (docs/decisions.md, "Doc comments
/// on Candid types"). The interface is documented in the `.did`.
#[cfg(test)]
mod no_doc_comments_on_candid_types {
    use std::path::Path;

    /// `(file, line)` of each `///` line of an item deriving `CandidType`.
    fn offenders(root: &Path) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read source dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    let name = path.display().to_string();
                    found.extend(scan(&text).into_iter().map(|line| (name.clone(), line)));
                }
            }
        }
        found
    }

    /// Line numbers (1-based) of `///` lines on or inside items deriving `CandidType`: the
    /// doc lines right above the derive, and those of the item's body.
    fn scan(text: &str) -> Vec<usize> {
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            if !lines[i].trim_start().starts_with("#[derive(") {
                i += 1;
                continue;
            }
            // The derive may span lines (rustfmt breaks long ones).
            let mut end = i;
            while end + 1 < lines.len() && !lines[end].contains(")]") {
                end += 1;
            }
            if !lines[i..=end].iter().any(|l| l.contains("CandidType")) {
                i = end + 1;
                continue;
            }
            let mut k = i;
            while k > 0 {
                let above = lines[k - 1].trim_start();
                if above.starts_with("///") {
                    out.push(k);
                } else if !above.starts_with("#[") {
                    break;
                }
                k -= 1;
            }
            // The item's body: from the derive to the brace that closes it.
            let mut depth = 0i32;
            let mut opened = false;
            let mut j = end + 1;
            while j < lines.len() {
                let line = lines[j];
                if line.trim_start().starts_with("///") {
                    out.push(j + 1);
                }
                depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
                opened |= line.contains('{');
                if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            i = j + 1;
        }
        out
    }

    #[test]
    fn the_scan_finds_doc_comments_on_candid_items() {
        let text =
            "/// a\n#[derive(Debug, CandidType)]\npub struct A {\n    /// b\n    x: u8,\n}\n\
                    /// c\n#[derive(Debug)]\npub struct B {\n    /// d\n    y: u8,\n}\n\
                    /// e\n#[derive(\n    Debug,\n    CandidType,\n)]\nenum C {\n    /// f\n    X,\n}\n";
        assert_eq!(scan(text), vec![1, 4, 13, 19]);
    }

    #[test]
    fn candid_types_have_no_doc_comments() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let found = offenders(&root);
        assert!(
            found.is_empty(),
            "`///` on Candid types (use `//`): {found:?}"
        );
    }
}
