//! Model reports as Markdown: read by pulldown-cmark (CommonMark) into a few kinds of blocks —
//! paragraphs, headings, lists, code, rules — with emphasis, strong emphasis and code inside.
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

/// Appends text, merging it with text just before (the parser splits text at every character
/// that might have been markup).
fn push_text(out: &mut Vec<Inline>, t: &str) {
    if t.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Inline::Text(prev)) => prev.push_str(t),
        _ => out.push(Inline::Text(t.to_string())),
    }
}

/// Appends one space unless the text just before ends with one.
fn push_space(out: &mut Vec<Inline>) {
    if !matches!(out.last(), Some(Inline::Text(t)) if t.ends_with(' ')) {
        push_text(out, " ");
    }
}

/// Reads Markdown with pulldown-cmark (CommonMark) into the blocks we render. Raw HTML, block or
/// inline, becomes text; a link becomes its text followed by its address in parentheses; an
/// image becomes its description; nested lists are folded into their item's text.
pub fn parse(md: &str) -> Vec<Block> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};

    let mut blocks = Vec::new();
    // Inline content being gathered, innermost last; each Strong/Em opens a frame.
    let mut frames: Vec<Vec<Inline>> = vec![Vec::new()];
    // The open lists (ordered?, items), outermost first.
    let mut lists: Vec<(bool, Vec<Vec<Inline>>)> = Vec::new();
    let mut code: Option<String> = None;
    let mut links: Vec<String> = Vec::new();
    let take = |frames: &mut Vec<Vec<Inline>>| std::mem::take(frames.last_mut().expect("a frame"));

    for event in Parser::new(md) {
        if let Some(c) = code.as_mut() {
            match event {
                Event::Text(t) => c.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    blocks.push(Block::Code(c.trim_end_matches('\n').to_string()));
                    code = None;
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::CodeBlock(_)) => code = Some(String::new()),
            Event::Start(Tag::Strong | Tag::Emphasis) => frames.push(Vec::new()),
            Event::End(end @ (TagEnd::Strong | TagEnd::Emphasis)) => {
                let inner = frames.pop().unwrap_or_default();
                let node = if end == TagEnd::Strong { Inline::Strong(inner) } else { Inline::Em(inner) };
                frames.last_mut().expect("a frame").push(node);
            }
            Event::Start(Tag::Link { dest_url, .. }) => links.push(dest_url.to_string()),
            Event::End(TagEnd::Link) => {
                if let Some(url) = links.pop() {
                    push_text(frames.last_mut().expect("a frame"), &format!(" ({url})"));
                }
            }
            Event::Text(t) | Event::Html(t) | Event::InlineHtml(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                push_text(frames.last_mut().expect("a frame"), &t)
            }
            Event::Code(t) => frames.last_mut().expect("a frame").push(Inline::Code(t.to_string())),
            Event::SoftBreak | Event::HardBreak => push_text(frames.last_mut().expect("a frame"), " "),
            Event::Rule => blocks.push(Block::Rule),
            Event::Start(Tag::List(start)) => {
                // A list inside an item: the item's text so far ends with a space before it.
                if !lists.is_empty() {
                    push_space(frames.last_mut().expect("a frame"));
                }
                lists.push((start.is_some(), Vec::new()));
            }
            Event::End(TagEnd::List(_)) => {
                if let Some((ordered, items)) = lists.pop() {
                    if lists.is_empty() {
                        blocks.push(Block::List { ordered, items });
                    } else {
                        // Fold a nested list into the enclosing item.
                        let text: Vec<String> = items.iter().map(|i| plain(i)).collect();
                        push_text(frames.last_mut().expect("a frame"), &text.join("; "));
                    }
                }
            }
            Event::End(TagEnd::Item) => {
                let content = take(&mut frames);
                match lists.last_mut() {
                    Some((_, items)) if !content.is_empty() || items.is_empty() => items.push(trim(content)),
                    Some((_, items)) => items.push(Vec::new()),
                    None => {}
                }
            }
            Event::End(TagEnd::Heading(level)) => {
                let content = take(&mut frames);
                blocks.push(Block::Heading(level as u8, trim(content)));
            }
            Event::End(TagEnd::Paragraph | TagEnd::HtmlBlock | TagEnd::TableRow | TagEnd::TableHead) => {
                if lists.is_empty() {
                    let content = trim(take(&mut frames));
                    if !content.is_empty() {
                        blocks.push(Block::Paragraph(content));
                    }
                } else {
                    // A loose list's paragraphs run on within their item.
                    push_space(frames.last_mut().expect("a frame"));
                }
            }
            Event::End(TagEnd::TableCell) => push_text(frames.last_mut().expect("a frame"), " | "),
            Event::TaskListMarker(done) => {
                push_text(frames.last_mut().expect("a frame"), if done { "[x] " } else { "[ ] " })
            }
            _ => {}
        }
    }
    blocks
}

/// Inline content without leading or trailing spaces.
fn trim(mut nodes: Vec<Inline>) -> Vec<Inline> {
    if let Some(Inline::Text(t)) = nodes.first_mut() {
        *t = t.trim_start().to_string();
    }
    if let Some(Inline::Text(t)) = nodes.last_mut() {
        *t = t.trim_end().trim_end_matches(" |").to_string();
    }
    nodes.retain(|n| !matches!(n, Inline::Text(t) if t.is_empty()));
    nodes
}

/// The text of inline content, without its markup.
fn plain(nodes: &[Inline]) -> String {
    nodes
        .iter()
        .map(|n| match n {
            Inline::Text(t) | Inline::Code(t) => t.clone(),
            Inline::Strong(c) | Inline::Em(c) => plain(c),
        })
        .collect()
}

/// Parses the inline markup of one block of text (emphasis, strong, code, links), CommonMark's way.
pub fn inline(text: &str) -> Vec<Inline> {
    match parse(text).into_iter().next() {
        Some(Block::Paragraph(nodes) | Block::Heading(_, nodes)) => nodes,
        _ => vec![Inline::Text(text.to_string())],
    }
}

/// Markdown as plain text for a terminal: no `**` or `_` marks, list items indented with a
/// dash, code indented, headings on their own line.
pub fn to_terminal(md: &str) -> String {
    let mut out = Vec::new();
    for block in parse(md) {
        match block {
            Block::Heading(_, c) | Block::Paragraph(c) => out.push(plain(&c)),
            Block::List { ordered, items } => {
                let lines: Vec<String> = items
                    .iter()
                    .enumerate()
                    .map(
                        |(i, item)| {
                            if ordered { format!("{}. {}", i + 1, plain(item)) } else { format!("- {}", plain(item)) }
                        },
                    )
                    .collect();
                out.push(lines.join("\n"));
            }
            Block::Code(c) => out.push(c.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")),
            Block::Rule => out.push("----".into()),
        }
    }
    out.join("\n\n")
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
        assert_eq!(b[2], Block::List { ordered: false, items: vec![vec![text("one")], vec![text("two continued")]] });
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
    fn terminal_text_has_no_marks() {
        let t =
            to_terminal("**Risk Analyst: Neutral** (score +0.02)\n\n- _Volatility_ is `28%`\n- fine\n\n_Rule-based._");
        assert_eq!(t, "Risk Analyst: Neutral (score +0.02)\n\n- Volatility is 28%\n- fine\n\nRule-based.");
    }

    #[test]
    fn nested_and_loose_lists_fold_into_items() {
        let b = parse("- a\n\n  more\n- b\n  - b1\n  - b2\n");
        assert_eq!(b, vec![Block::List { ordered: false, items: vec![vec![text("a more")], vec![text("b b1; b2")]] }]);
    }

    #[test]
    fn html_stays_text() {
        let b = parse("<script>alert(1)</script> and <img src=x onerror=alert(2)>");
        assert_eq!(b, vec![Block::Paragraph(vec![text("<script>alert(1)</script> and <img src=x onerror=alert(2)>")])]);
    }
}
