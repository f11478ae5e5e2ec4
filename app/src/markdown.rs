//! A small Markdown reader for model reports: paragraphs, headings, lists, emphasis, code.
//!
//! Reports come from language models and are untrusted. They are parsed into blocks and
//! rendered as Leptos views whose text is always set as text: an `<img onerror>` or a
//! `<script>` in a report shows up as those characters, never as markup. Links show their text
//! and address as text; nothing from a model becomes a clickable URL.

use leptos::prelude::*;

#[derive(Debug, Clone, PartialEq)]
pub enum Inline {
    Text(String),
    Strong(Vec<Inline>),
    Em(Vec<Inline>),
    Code(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(u8, Vec<Inline>),
    Paragraph(Vec<Inline>),
    List { ordered: bool, items: Vec<Vec<Inline>> },
    Code(String),
    Rule,
}

fn list_item(line: &str) -> Option<(bool, &str)> {
    let t = line.trim_start();
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = t.strip_prefix(marker) {
            return Some((false, rest));
        }
    }
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0
        && digits < 4
        && let Some(rest) = t[digits..].strip_prefix(". ").or_else(|| t[digits..].strip_prefix(") "))
    {
        return Some((true, rest));
    }
    None
}

fn heading(line: &str) -> Option<(u8, &str)> {
    let t = line.trim_start();
    let level = t.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&level) {
        t[level..].strip_prefix(' ').map(|rest| (level as u8, rest.trim_end_matches('#').trim()))
    } else {
        None
    }
}

pub fn parse(md: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    let mut list: Option<(bool, Vec<Vec<Inline>>)> = None;
    let mut lines = md.lines().peekable();

    fn flush(blocks: &mut Vec<Block>, para: &mut Vec<&str>, list: &mut Option<(bool, Vec<Vec<Inline>>)>) {
        if !para.is_empty() {
            blocks.push(Block::Paragraph(inline(&para.join(" "))));
            para.clear();
        }
        if let Some((ordered, items)) = list.take() {
            blocks.push(Block::List { ordered, items });
        }
    }

    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            flush(&mut blocks, &mut para, &mut list);
            let mut code = Vec::new();
            for l in lines.by_ref() {
                if l.trim().starts_with("```") {
                    break;
                }
                code.push(l);
            }
            blocks.push(Block::Code(code.join("\n")));
        } else if trimmed.is_empty() {
            flush(&mut blocks, &mut para, &mut list);
        } else if matches!(trimmed, "---" | "***" | "___") {
            flush(&mut blocks, &mut para, &mut list);
            blocks.push(Block::Rule);
        } else if let Some((level, text)) = heading(line) {
            flush(&mut blocks, &mut para, &mut list);
            blocks.push(Block::Heading(level, inline(text)));
        } else if let Some((ordered, text)) = list_item(line) {
            if !para.is_empty() || list.as_ref().is_some_and(|(o, _)| *o != ordered) {
                flush(&mut blocks, &mut para, &mut list);
            }
            list.get_or_insert_with(|| (ordered, Vec::new())).1.push(inline(text));
        } else if let Some((_, items)) = list.as_mut().filter(|_| line.starts_with("  ")) {
            // A continuation line of the last item.
            if let Some(last) = items.last_mut() {
                last.push(Inline::Text(" ".into()));
                last.extend(inline(trimmed));
            }
        } else {
            if list.is_some() {
                flush(&mut blocks, &mut para, &mut list);
            }
            para.push(trimmed);
        }
    }
    flush(&mut blocks, &mut para, &mut list);
    blocks
}

/// Parses emphasis, strong emphasis, code spans and links within one block of text.
///
/// Emphasis follows CommonMark's flanking rules closely enough for prose: an opener is followed
/// by a non-space, a closer preceded by one, and underscores never open or close inside a word
/// (`snake_case`, `window.__name`), so identifiers in a report are shown as written.
pub fn inline(text: &str) -> Vec<Inline> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut plain = String::new();
    let word = |i: usize| chars.get(i).is_some_and(|c| c.is_alphanumeric());
    let space = |i: usize| chars.get(i).is_none_or(|c| c.is_whitespace());
    // A closer for a run of `n` × `d` after `from`, if there is one.
    let closer = |from: usize, d: char, n: usize| -> Option<usize> {
        (from..chars.len()).find(|&j| {
            j + n <= chars.len()
                && chars[j..j + n].iter().all(|c| *c == d)
                && chars.get(j + n) != Some(&d)
                && (j == 0 || chars[j - 1] != d)
                && j > from
                && !space(j - 1)
                && (d != '_' || !word(j + n))
        })
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opener = |n: usize| !space(i + n) && (c != '_' || i == 0 || !word(i - 1)) && (i == 0 || chars[i - 1] != c);
        let matched = match c {
            '`' => chars[i + 1..].iter().position(|x| *x == '`').map(|k| {
                let end = i + 1 + k;
                (Inline::Code(chars[i + 1..end].iter().collect()), end + 1)
            }),
            '*' | '_' if chars.get(i + 1) == Some(&c) && opener(2) => closer(i + 2, c, 2)
                .map(|end| (Inline::Strong(inline(&chars[i + 2..end].iter().collect::<String>())), end + 2)),
            '*' | '_' if chars.get(i + 1) != Some(&c) && opener(1) => closer(i + 1, c, 1)
                .map(|end| (Inline::Em(inline(&chars[i + 1..end].iter().collect::<String>())), end + 1)),
            '[' => link(&chars, i).map(|(label, url, end)| (Inline::Text(format!("{label} ({url})")), end)),
            _ => None,
        };
        match matched {
            Some((Inline::Text(t), next)) => {
                plain.push_str(&t);
                i = next;
            }
            Some((node, next)) => {
                if !plain.is_empty() {
                    out.push(Inline::Text(std::mem::take(&mut plain)));
                }
                out.push(node);
                i = next;
            }
            None => {
                plain.push(c);
                i += 1;
            }
        }
    }
    if !plain.is_empty() {
        out.push(Inline::Text(plain));
    }
    out
}

/// `[label](url)` at `i`: its label, its address and the index after it.
fn link(chars: &[char], i: usize) -> Option<(String, String, usize)> {
    let close = i + 1 + chars[i + 1..].iter().position(|c| *c == ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = close + 2 + chars[close + 2..].iter().position(|c| *c == ')')?;
    Some((chars[i + 1..close].iter().collect(), chars[close + 2..end].iter().collect(), end + 1))
}

fn render_inline(nodes: Vec<Inline>) -> AnyView {
    nodes
        .into_iter()
        .map(|n| match n {
            Inline::Text(t) => t.into_any(),
            Inline::Strong(c) => view! { <strong>{render_inline(c)}</strong> }.into_any(),
            Inline::Em(c) => view! { <em>{render_inline(c)}</em> }.into_any(),
            Inline::Code(t) => view! { <code>{t}</code> }.into_any(),
        })
        .collect_view()
        .into_any()
}

/// Renders untrusted Markdown as views.
#[component]
pub fn Markdown(#[prop(into)] source: String) -> impl IntoView {
    let blocks = parse(&source);
    view! {
        <div class="markdown">
            {blocks
                .into_iter()
                .map(|b| match b {
                    Block::Heading(level, c) => match level {
                        1 | 2 => view! { <h4>{render_inline(c)}</h4> }.into_any(),
                        _ => view! { <h5>{render_inline(c)}</h5> }.into_any(),
                    },
                    Block::Paragraph(c) => view! { <p>{render_inline(c)}</p> }.into_any(),
                    Block::List { ordered: false, items } => {
                        view! { <ul>{items.into_iter().map(|i| view! { <li>{render_inline(i)}</li> }).collect_view()}</ul> }.into_any()
                    }
                    Block::List { ordered: true, items } => {
                        view! { <ol>{items.into_iter().map(|i| view! { <li>{render_inline(i)}</li> }).collect_view()}</ol> }.into_any()
                    }
                    Block::Code(t) => view! { <pre><code>{t}</code></pre> }.into_any(),
                    Block::Rule => view! { <hr/> }.into_any(),
                })
                .collect_view()}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Inline {
        Inline::Text(s.into())
    }

    #[test]
    fn blocks_are_recognised() {
        let md = "## Trend\n\nUp **strongly** since\nMay.\n\n- one\n- two\n  continued\n\n1. first\n2. second\n\n```\nraw *x*\n```\n---";
        let b = parse(md);
        assert_eq!(b[0], Block::Heading(2, vec![text("Trend")]));
        assert_eq!(
            b[1],
            Block::Paragraph(vec![text("Up "), Inline::Strong(vec![text("strongly")]), text(" since May.")])
        );
        assert_eq!(
            b[2],
            Block::List {
                ordered: false,
                items: vec![vec![text("one")], vec![text("two"), text(" "), text("continued")]]
            }
        );
        assert_eq!(b[3], Block::List { ordered: true, items: vec![vec![text("first")], vec![text("second")]] });
        assert_eq!(b[4], Block::Code("raw *x*".into()));
        assert_eq!(b[5], Block::Rule);
    }

    #[test]
    fn inline_markup_and_what_is_left_alone() {
        assert_eq!(
            inline("a *b* `c`"),
            vec![text("a "), Inline::Em(vec![text("b")]), text(" "), Inline::Code("c".into())]
        );
        assert_eq!(inline("snake_case_name"), vec![text("snake_case_name")]);
        assert_eq!(inline("2 * 3 * 4"), vec![text("2 * 3 * 4")]);
        assert_eq!(inline("unclosed **bold"), vec![text("unclosed **bold")]);
        assert_eq!(inline("see [docs](https://x.y)"), vec![text("see docs (https://x.y)")]);
        assert_eq!(
            inline("window.__pwned = 1 and window.__pwned = 2"),
            vec![text("window.__pwned = 1 and window.__pwned = 2")]
        );
        assert_eq!(
            inline("__strong__ and _em_"),
            vec![Inline::Strong(vec![text("strong")]), text(" and "), Inline::Em(vec![text("em")])]
        );
        assert_eq!(
            inline("**a *b* c**"),
            vec![Inline::Strong(vec![text("a "), Inline::Em(vec![text("b")]), text(" c")])]
        );
        assert_eq!(inline("a ** b ** c"), vec![text("a ** b ** c")]);
    }

    #[test]
    fn html_stays_text() {
        let b = parse("<script>alert(1)</script> and <img src=x onerror=alert(2)>");
        assert_eq!(b, vec![Block::Paragraph(vec![text("<script>alert(1)</script> and <img src=x onerror=alert(2)>")])]);
    }
}
