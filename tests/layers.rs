//! The crate's top-level modules import downwards only: a cycle between two of them (through
//! any `crate::` path in src/**) fails here. Paths inside one module (`upsd::client` and
//! `upsd::tls`) are that module's business.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules each `crate::NAME` path (or `crate::{A, B::c}` group) in `text` names.
fn imports(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut word = String::new();
                let mut at_start = true;
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => at_start = true,
                        c if at_start && (c.is_alphanumeric() || c == '_') => word.push(c),
                        _ => {
                            if !word.is_empty() {
                                out.insert(std::mem::take(&mut word));
                            }
                            if !c.is_whitespace() {
                                at_start = false;
                            }
                        }
                    }
                }
                if !word.is_empty() {
                    out.insert(word);
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// Which top-level module each file of `src` belongs to, and what it imports.
fn graph(src: &Path) -> Graph {
    let mut g = Graph::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let to = g.entry(module.clone()).or_default();
            to.extend(imports(&text).into_iter().filter(|m| *m != module));
        }
    }
    g
}

/// Every cycle's modules (the strongly connected components with more than one module).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    // Reachability is enough at this size: two modules are in one cycle when each reaches
    // the other.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for n in g.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in g.keys() {
        let comp: Vec<String> = g
            .keys()
            .filter(|n| *n == m || (reaches[m].contains(*n) && reaches[n].contains(m)))
            .cloned()
            .collect();
        if comp.len() > 1 && !out.contains(&comp) {
            out.push(comp);
        }
    }
    out
}

#[test]
fn top_level_modules_import_downwards_only() {
    let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(g.contains_key("cli") && g.contains_key("nut"), "{g:?}");
    let found = cycles(&g);
    let edges: Vec<String> = found
        .iter()
        .flatten()
        .flat_map(|m| {
            g[m].iter()
                .filter(|n| found.iter().any(|c| c.contains(m) && c.contains(n)))
                .map(move |n| format!("{m} -> {n}"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles between top-level modules: {found:?}; edges: {edges:?}"
    );
}

#[test]
fn the_cycle_finder_sees_cycles_and_group_imports() {
    assert_eq!(
        imports("use crate::{agent::x, web, nut::{a, b}};\nlet y = crate::json::f(); // crate::c"),
        ["agent", "json", "nut", "web"].map(String::from).into()
    );
    assert!(imports("use my_crate::x; // crate::y").is_empty());
    let g = |edges: &[(&str, &str)]| {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert!(cycles(&g(&[("cli", "agent"), ("agent", "nut"), ("cli", "nut")])).is_empty());
    assert_eq!(
        cycles(&g(&[
            ("agent", "web"),
            ("web", "cli"),
            ("cli", "agent"),
            ("cli", "nut")
        ])),
        [["agent", "cli", "web"].map(String::from).to_vec()]
    );
}
