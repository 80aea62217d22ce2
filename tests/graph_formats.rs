//! `flow graph --format svg|html` through the real binary: a 50-instance sweep is drawn as
//! one box per node with its state counts, markup from matrix values is escaped, and the HTML
//! page is self-contained.

mod common;

use common::{TestProject, stderr, stdout};

/// 10 x 5 = 50 `train` instances, the five with x=3 fail; matrix values that are markup.
const SWEEP: &str = r#"
nodes:
  data:
    run: "echo d > {outputs.0}"
    outputs: [data.txt]
  train:
    needs: [data]
    matrix:
      x: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
      y: ["a&b", "c<d", "e>f", "g\"h", "i'j"]
    run: "test {x} != 3"
  metrics:
    needs: [train]
    run: "true"
  leaderboard:
    gather: [metrics]
    run: "true"
"#;

/// A project with SWEEP run once with `--keep-going`: data fresh; train 45 fresh, 5 failed;
/// metrics 45 fresh, 5 stale (never ran); leaderboard stale.
fn swept() -> TestProject {
    let p = TestProject::new();
    p.workflow(SWEEP);
    let (s, code) = p.run(&["--keep-going"]);
    assert_eq!(code, 1, "{s:?}");
    assert_eq!(s.failed.len(), 5, "{s:?}");
    p
}

fn graph(p: &TestProject, format: &str) -> String {
    let out = p.flow(&["graph", "workflows/w.yaml", "--format", format]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn svg_draws_one_box_per_node_with_state_counts() {
    let p = swept();
    let svg = graph(&p, "svg");
    let doc = xml::parse(&svg).unwrap_or_else(|e| panic!("not well-formed: {e}\n{svg}"));
    assert_eq!(doc.root, "svg");
    assert_eq!(
        doc.attr_of_root("xmlns"),
        Some("http://www.w3.org/2000/svg")
    );

    let mut boxes: Vec<&str> = doc
        .elements
        .iter()
        .filter(|e| e.name == "g" && e.attr("class").is_some_and(|c| c.starts_with("node ")))
        .filter_map(|e| e.attr("data-node"))
        .collect();
    boxes.sort();
    assert_eq!(boxes, ["data", "leaderboard", "metrics", "train"]);
    // Each box coloured by its worst state.
    let class_of = |name: &str| {
        doc.elements
            .iter()
            .find(|e| e.name == "g" && e.attr("data-node") == Some(name))
            .and_then(|e| e.attr("class"))
            .unwrap()
            .to_string()
    };
    assert_eq!(class_of("data"), "node fresh");
    assert_eq!(class_of("train"), "node failed");
    assert_eq!(class_of("metrics"), "node stale");

    for text in [
        "train ×50",
        "45 fresh, 5 failed",
        "metrics ×50",
        "45 fresh, 5 stale",
        "leaderboard",
        "stale: new: never ran",
        "fresh",
    ] {
        assert!(doc.texts.iter().any(|t| t == text), "no text {text:?}");
    }
    // One link per pair of nodes: three links, the gather one dashed, the others solid.
    let links: Vec<(&str, &str)> = doc
        .elements
        .iter()
        .filter(|e| e.name == "g" && e.attr("class") == Some("link"))
        .map(|e| (e.attr("data-from").unwrap(), e.attr("data-to").unwrap()))
        .collect();
    assert_eq!(
        links,
        [
            ("data", "train"),
            ("train", "metrics"),
            ("metrics", "leaderboard")
        ]
    );
    let dashed: Vec<bool> = doc
        .elements
        .iter()
        .filter(|e| e.name == "path" && e.parent_class.as_deref() == Some("link"))
        .map(|e| e.attr("stroke-dasharray").is_some())
        .collect();
    assert_eq!(dashed, [false, false, true], "{svg}");
    assert!(doc.texts.iter().any(|t| t == "1→50"));
    assert!(doc.texts.iter().any(|t| t == "50→50"));
    assert!(doc.texts.iter().any(|t| t == "gather 50→1"));
    // The legend names the states and the edge kinds.
    for word in ["fresh", "stale", "failed", "gather: many into one"] {
        assert!(doc.texts.iter().any(|t| t == word), "legend lacks {word}");
    }
}

#[test]
fn svg_escapes_matrix_values_in_ids_and_reasons() {
    let p = swept();
    let svg = graph(&p, "svg");
    let doc = xml::parse(&svg).unwrap_or_else(|e| panic!("not well-formed: {e}"));
    // The values appear only escaped in the markup (`>` and quotes would be legal in text,
    // but are escaped everywhere so the same function serves attributes)...
    for (raw, escaped) in [
        ("a&b", "a&amp;b"),
        ("c<d", "c&lt;d"),
        ("=e>f", "=e&gt;f"),
        ("g\"h", "g&quot;h"),
        ("i'j", "i&apos;j"),
    ] {
        assert!(!svg.contains(raw), "{raw} unescaped");
        assert!(svg.contains(escaped), "{escaped} missing");
    }
    // ...and read back as written: the train box's tooltip lists the failed instances.
    let tooltip = doc
        .texts
        .iter()
        .find(|t| t.starts_with("train: 50 instances"))
        .unwrap_or_else(|| panic!("no train tooltip in {:?}", doc.texts));
    for id in [
        "train[x=3,y=a&b] — failed",
        "train[x=3,y=c<d] — failed",
        "train[x=3,y=g\"h] — failed",
        "train[x=3,y=i'j] — failed",
    ] {
        assert!(tooltip.contains(id), "{id} not in {tooltip}");
    }
}

#[test]
fn html_is_self_contained_with_the_svg_and_a_row_per_instance() {
    let p = swept();
    let html = graph(&p, "html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"));
    for external in ["src=", "href=", "@import", "url(http", "<link"] {
        assert!(!html.contains(external), "{external} in the page");
    }
    // The inline SVG is the collapsed graph and well-formed on its own.
    let start = html.find("<svg").expect("inline svg");
    let end = html.find("</svg>").expect("end of svg") + "</svg>".len();
    let doc = xml::parse(&html[start..end]).unwrap_or_else(|e| panic!("svg: {e}"));
    let boxes = doc
        .elements
        .iter()
        .filter(|e| e.attr("class").is_some_and(|c| c.starts_with("node ")))
        .count();
    assert_eq!(boxes, 4);
    // One table row per instance, with its node for the click filter, state and reasons.
    let rows: Vec<&str> = html
        .lines()
        .filter(|l| l.starts_with("<tr class="))
        .collect();
    assert_eq!(rows.len(), 1 + 50 + 50 + 1, "{html}");
    assert!(rows.contains(
        &"<tr class=\"failed\" data-node=\"train\"><td class=\"id\">train[x=3,y=a&amp;b]</td><td class=\"state\">failed</td><td>previous run failed (exit code 1)</td></tr>"
    ), "{rows:#?}");
    assert!(rows.contains(
        &"<tr class=\"fresh\" data-node=\"train\"><td class=\"id\">train[x=0,y=c&lt;d]</td><td class=\"state\">fresh</td><td></td></tr>"
    ), "{rows:#?}");
    assert!(
        rows.iter().any(|r| r.starts_with(
            "<tr class=\"stale\" data-node=\"metrics\"><td class=\"id\">metrics[x=3,y=e&gt;f]</td><td class=\"state\">stale</td><td>new: never ran; upstream will run first"
        )),
        "{rows:#?}"
    );
    // The filter box, and the script that wires it and the boxes.
    assert!(html.contains("<input id=\"filter\""));
    assert!(html.contains("<script>") && html.contains("addEventListener('click'"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn a_single_instance_node_shows_its_reason_and_a_fresh_graph_draws() {
    let p = TestProject::new();
    p.workflow("nodes:\n  only:\n    run: \"true\"\n");
    let svg = graph(&p, "svg");
    let doc = xml::parse(&svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(doc.texts.iter().any(|t| t == "stale: new: never ran"));
    assert!(doc.texts.iter().any(|t| t == "only"));
    p.run(&[]);
    let svg = graph(&p, "svg");
    let doc = xml::parse(&svg).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        doc.texts
            .iter()
            .any(|t| t.contains("1 instance of 1 node: 1 fresh, 0 stale, 0 failed"))
    );
    assert!(!doc.elements.iter().any(|e| e.attr("class") == Some("link")));
}

/// A small XML well-formedness checker, enough for flow's own SVG: prolog, comments,
/// elements with quoted attributes, text, and the five named plus numeric character
/// references. No DTDs, CDATA or processing instructions after the prolog.
mod xml {
    pub struct Element {
        pub name: String,
        pub attrs: Vec<(String, String)>,
        /// `class` of the enclosing element, to tell link paths from legend paths.
        pub parent_class: Option<String>,
    }

    impl Element {
        pub fn attr(&self, name: &str) -> Option<&str> {
            self.attrs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    pub struct Doc {
        pub root: String,
        /// Every element in document order.
        pub elements: Vec<Element>,
        /// Every non-blank text node, unescaped and trimmed.
        pub texts: Vec<String>,
    }

    impl Doc {
        pub fn attr_of_root(&self, name: &str) -> Option<&str> {
            self.elements[0].attr(name)
        }
    }

    fn is_name_start(c: char) -> bool {
        c.is_ascii_alphabetic() || c == '_' || c == ':'
    }

    fn is_name_char(c: char) -> bool {
        is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
    }

    /// Replaces character references; errors on a bare `&` or an unknown entity.
    fn unescape(s: &str, at: usize) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let semi = rest[i..]
                .find(';')
                .ok_or_else(|| format!("bare & near byte {at}"))?;
            let ent = &rest[i + 1..i + semi];
            let c = match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad reference &{ent}; near byte {at}"))?,
                _ if ent.starts_with('#') => ent[1..]
                    .parse::<u32>()
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad reference &{ent}; near byte {at}"))?,
                _ => return Err(format!("unknown entity &{ent}; near byte {at}")),
            };
            out.push(c);
            rest = &rest[i + semi + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    pub fn parse(src: &str) -> Result<Doc, String> {
        let mut pos = 0;
        if src.starts_with("<?xml") {
            pos = src.find("?>").ok_or("unterminated prolog")? + 2;
        }
        let mut stack: Vec<(String, Option<String>)> = Vec::new();
        let mut elements = Vec::new();
        let mut texts = Vec::new();
        let mut root: Option<String> = None;
        let mut closed_root = false;
        while pos < src.len() {
            let rest = &src[pos..];
            if let Some(after) = rest.strip_prefix("<!--") {
                let end = after.find("-->").ok_or("unterminated comment")?;
                pos += 4 + end + 3;
            } else if let Some(after) = rest.strip_prefix("</") {
                let end = after.find('>').ok_or("unterminated end tag")?;
                let name = after[..end].trim_end();
                match stack.pop() {
                    Some((open, _)) if open == name => {}
                    other => {
                        return Err(format!(
                            "</{name}> at byte {pos} closes {:?}",
                            other.map(|o| o.0)
                        ));
                    }
                }
                if stack.is_empty() {
                    closed_root = true;
                }
                pos += 2 + end + 1;
            } else if let Some(after) = rest.strip_prefix('<') {
                if closed_root {
                    return Err(format!("second root element at byte {pos}"));
                }
                let name: String = after.chars().take_while(|&c| is_name_char(c)).collect();
                if !name.chars().next().is_some_and(is_name_start) {
                    return Err(format!("bad tag name at byte {pos}"));
                }
                let mut i = 1 + name.len();
                let mut attrs: Vec<(String, String)> = Vec::new();
                let self_closing;
                loop {
                    let ws = rest[i..].len() - rest[i..].trim_start().len();
                    i += ws;
                    let r = &rest[i..];
                    if r.starts_with("/>") {
                        self_closing = true;
                        i += 2;
                        break;
                    }
                    if r.starts_with('>') {
                        self_closing = false;
                        i += 1;
                        break;
                    }
                    if ws == 0 {
                        return Err(format!(
                            "attribute without space before it at byte {}",
                            pos + i
                        ));
                    }
                    let key: String = r.chars().take_while(|&c| is_name_char(c)).collect();
                    if !key.chars().next().is_some_and(is_name_start) {
                        return Err(format!("bad attribute at byte {}", pos + i));
                    }
                    let r2 = &r[key.len()..];
                    let q = r2
                        .strip_prefix('=')
                        .and_then(|v| v.chars().next())
                        .filter(|&c| c == '"' || c == '\'')
                        .ok_or_else(|| format!("attribute {key} not quoted at byte {}", pos + i))?;
                    let value_start = key.len() + 2;
                    let len = r[value_start..]
                        .find(q)
                        .ok_or_else(|| format!("unterminated attribute {key}"))?;
                    let raw = &r[value_start..value_start + len];
                    if raw.contains('<') {
                        return Err(format!("< in attribute {key} at byte {}", pos + i));
                    }
                    if attrs.iter().any(|(k, _)| *k == key) {
                        return Err(format!("duplicate attribute {key} at byte {}", pos + i));
                    }
                    attrs.push((key, unescape(raw, pos + i)?));
                    i += value_start + len + 1;
                }
                if root.is_none() {
                    root = Some(name.clone());
                }
                let parent_class = stack.last().and_then(|(_, c)| c.clone());
                let class = attrs
                    .iter()
                    .find(|(k, _)| k == "class")
                    .map(|(_, v)| v.clone());
                elements.push(Element {
                    name: name.clone(),
                    attrs,
                    parent_class,
                });
                if self_closing {
                    if stack.is_empty() {
                        closed_root = true;
                    }
                } else {
                    stack.push((name, class));
                }
                pos += i;
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let raw = &rest[..end];
                if stack.is_empty() && !raw.trim().is_empty() {
                    return Err(format!("text outside the root at byte {pos}"));
                }
                let text = unescape(raw, pos)?;
                if !text.trim().is_empty() {
                    texts.push(text.trim().to_string());
                }
                pos += end;
            }
        }
        if let Some((open, _)) = stack.last() {
            return Err(format!("<{open}> never closed"));
        }
        Ok(Doc {
            root: root.ok_or("no root element")?,
            elements,
            texts,
        })
    }

    #[test]
    fn the_checker_rejects_what_it_should() {
        assert!(parse("<a><b></b></a>").is_ok());
        assert!(parse("<?xml version=\"1.0\"?>\n<a x='1' y=\"&amp;\"/>\n").is_ok());
        for bad in [
            "<a><b></a></b>",
            "<a>",
            "<a></a><b></b>",
            "<a>x & y</a>",
            "<a>x < y</a>",
            "<a x=1></a>",
            "<a x=\"<\"></a>",
            "<a x=\"1\" x=\"2\"></a>",
            "<a>&nbsp;</a>",
            "<a x=\"1\"y=\"2\"></a>",
            "text<a></a>",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad}");
        }
    }
}
