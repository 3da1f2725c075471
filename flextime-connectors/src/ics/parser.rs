//! The RFC 5545 content-line parser: unfolding, properties with parameters,
//! and the component tree.
//!
//! # Why not the `icalendar` crate
//!
//! The `icalendar` crate's `parser` feature (0.17) was evaluated and not used
//! as the base, for three reasons found in its source and behaviour:
//!
//! - its error line numbers refer to the *unfolded* copy of the input, not to
//!   the file the user has, and the errors are strings, not typed;
//! - a parameter with several quoted values
//!   (`DELEGATED-TO="mailto:a@x","mailto:b@x"`, RFC 5545 section 3.2) fails to
//!   parse: it reads one quoted value and then expects `;` or `:`;
//! - it accepts `,`, `/` and `.` in property names, and it does not decode
//!   RFC 6868 `^`-escapes in parameter values.
//!
//! The grammar is small, so this module implements it directly: one pass
//! over the input that unfolds lines without copying unless a line really is
//! folded, and keeps the physical line number of each content line for
//! errors. Values are kept raw (still TEXT-escaped); [`Property::text`]
//! unescapes, since only TEXT values use backslash escapes.

use std::borrow::Cow;

use flextime_core::{Error, Result};

/// Maximum nesting of `BEGIN` blocks accepted (VCALENDAR > VEVENT > VALARM
/// needs three); deeper input is rejected rather than followed.
pub const MAX_DEPTH: usize = 16;

/// One parameter of a property: a name (upper-cased) and one or more values
/// (quotes removed, RFC 6868 `^`-escapes decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Upper-cased parameter name, such as `TZID` or `CN`.
    pub name: String,
    /// The values, in order (`MEMBER="a","b"` has two).
    pub values: Vec<String>,
    /// Whether the input quoted a value; the writer then quotes every value
    /// (it always quotes values that contain `,` `;` or `:`).
    pub quoted: bool,
}

impl Param {
    /// A parameter with one value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            values: vec![value.into()],
            quoted: false,
        }
    }

    /// The first value (empty when there is none).
    pub fn value(&self) -> &str {
        self.values.first().map_or("", String::as_str)
    }
}

/// One content line: `NAME;PARAM=VALUE:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Upper-cased property name, such as `DTSTART` or `X-WR-CALNAME`.
    pub name: String,
    /// Parameters in their order of appearance.
    pub params: Vec<Param>,
    /// The raw value, after unfolding; TEXT escapes are still in it.
    pub value: String,
    /// The 1-based physical line number where the content line starts (0 for
    /// properties built in code).
    pub line: usize,
}

impl Property {
    /// A property with no parameters; `value` is raw (escape TEXT with
    /// [`escape_text`] first).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: Vec::new(),
            value: value.into(),
            line: 0,
        }
    }

    /// Adds a parameter (builder style).
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(Param::new(name, value));
        self
    }

    /// The first value of parameter `name` (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(Param::value)
    }

    /// The value as TEXT: backslash escapes decoded.
    pub fn text(&self) -> String {
        unescape_text(&self.value)
    }

    /// Parses one unfolded content line (no line break in it).
    pub fn parse(line: &str) -> Result<Self> {
        parse_content_line(line, 0)
    }

    /// This property as one unfolded content line (no line break).
    pub fn to_line(&self) -> String {
        let mut out = String::with_capacity(self.name.len() + self.value.len() + 16);
        out.push_str(&self.name);
        for p in &self.params {
            out.push(';');
            out.push_str(&p.name);
            out.push('=');
            for (i, v) in p.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_param_value(&mut out, v, p.quoted);
            }
        }
        out.push(':');
        out.push_str(&self.value);
        out
    }
}

/// A component: `BEGIN:NAME` ... `END:NAME` with its properties and
/// sub-components.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// Upper-cased component name, such as `VEVENT`.
    pub name: String,
    /// Properties in their order of appearance.
    pub properties: Vec<Property>,
    /// Nested components (VALARM in VEVENT, STANDARD in VTIMEZONE ...).
    pub components: Vec<Component>,
    /// The 1-based line number of its `BEGIN` (0 when built in code).
    pub line: usize,
}

impl Component {
    /// An empty component.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The first property called `name` (case-insensitive).
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Every property called `name` (case-insensitive).
    pub fn properties_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> {
        self.properties
            .iter()
            .filter(move |p| p.name.eq_ignore_ascii_case(name))
    }

    /// The component as unfolded content lines, `BEGIN` to `END`.
    pub fn to_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.push_lines(&mut out);
        out
    }

    fn push_lines(&self, out: &mut Vec<String>) {
        out.push(format!("BEGIN:{}", self.name));
        out.extend(self.properties.iter().map(Property::to_line));
        for c in &self.components {
            c.push_lines(out);
        }
        out.push(format!("END:{}", self.name));
    }
}

/// An error at a physical line of the input.
pub(crate) fn error_at(line: usize, message: impl std::fmt::Display) -> Error {
    if line == 0 {
        Error::invalid_input(format!("iCalendar: {message}"))
    } else {
        Error::invalid_input(format!("iCalendar line {line}: {message}"))
    }
}

/// Iterates over the unfolded content lines of `input` with the physical
/// line number each starts on. Accepts CRLF and bare LF; a line starting
/// with a space or a tab continues the previous one (that one character is
/// removed). Blank lines are skipped.
pub fn unfold(input: &str) -> impl Iterator<Item = (usize, Cow<'_, str>)> {
    Unfold {
        rest: input.strip_prefix('\u{feff}').unwrap_or(input),
        line: 0,
    }
}

struct Unfold<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Unfold<'a> {
    /// Takes one physical line (without its line break).
    fn take_physical(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        self.line += 1;
        let (line, rest) = match self.rest.find('\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, ""),
        };
        self.rest = rest;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }

    fn next_is_continuation(&self) -> bool {
        self.rest.starts_with([' ', '\t'])
    }
}

impl<'a> Iterator for Unfold<'a> {
    type Item = (usize, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let first = self.take_physical()?;
            let start = self.line;
            if !self.next_is_continuation() {
                if first.trim().is_empty() {
                    continue;
                }
                return Some((start, Cow::Borrowed(first)));
            }
            let mut joined = String::from(first);
            while self.next_is_continuation() {
                if let Some(cont) = self.take_physical() {
                    joined.push_str(&cont[1..]);
                }
            }
            if joined.trim().is_empty() {
                continue;
            }
            return Some((start, Cow::Owned(joined)));
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Parses one content line; `line` is used in errors.
pub(crate) fn parse_content_line(input: &str, line: usize) -> Result<Property> {
    if input.contains('\r') {
        return Err(error_at(line, "a carriage return inside a line"));
    }
    let name_end = input
        .find(|c: char| !is_name_char(c))
        .unwrap_or(input.len());
    if name_end == 0 {
        return Err(error_at(line, "expected a property name"));
    }
    let name = input[..name_end].to_ascii_uppercase();
    let mut rest = &input[name_end..];
    let mut params = Vec::new();
    loop {
        match rest.chars().next() {
            Some(':') => {
                return Ok(Property {
                    name,
                    params,
                    value: rest[1..].to_owned(),
                    line,
                });
            }
            Some(';') => {
                let (param, after) = parse_param(&rest[1..], line, &name)?;
                params.push(param);
                rest = after;
            }
            Some(c) => {
                return Err(error_at(
                    line,
                    format!(
                        "unexpected character {c:?} after property {name} (expected `;` or `:`)"
                    ),
                ));
            }
            None => {
                return Err(error_at(
                    line,
                    format!("property {name} has no `:` and no value"),
                ));
            }
        }
    }
}

fn parse_param<'a>(input: &'a str, line: usize, prop: &str) -> Result<(Param, &'a str)> {
    let name_end = input
        .find(|c: char| !is_name_char(c))
        .unwrap_or(input.len());
    if name_end == 0 {
        return Err(error_at(
            line,
            format!("{prop}: expected a parameter name after `;`"),
        ));
    }
    let name = input[..name_end].to_ascii_uppercase();
    let Some(mut rest) = input[name_end..].strip_prefix('=') else {
        return Err(error_at(
            line,
            format!("{prop}: parameter {name} has no `=`"),
        ));
    };
    let mut values = Vec::new();
    let mut any_quoted = false;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            any_quoted = true;
            let Some(end) = quoted.find('"') else {
                return Err(error_at(
                    line,
                    format!("{prop}: parameter {name} has an unterminated quoted value"),
                ));
            };
            values.push(decode_caret(&quoted[..end]));
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find([',', ';', ':', '"']).unwrap_or(rest.len());
            if rest[end..].starts_with('"') {
                return Err(error_at(
                    line,
                    format!("{prop}: parameter {name} has a quote inside an unquoted value"),
                ));
            }
            values.push(decode_caret(&rest[..end]));
            rest = &rest[end..];
        }
        match rest.strip_prefix(',') {
            Some(after) => rest = after,
            None => break,
        }
    }
    if !rest.starts_with([';', ':']) {
        return Err(error_at(
            line,
            format!("{prop}: unexpected text after the value of parameter {name}"),
        ));
    }
    Ok((
        Param {
            name,
            values,
            quoted: any_quoted,
        },
        rest,
    ))
}

/// RFC 6868: `^n` newline, `^'` double quote, `^^` caret.
fn decode_caret(s: &str) -> String {
    if !s.contains('^') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '^' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some('\'') => out.push('"'),
            Some(other) if other != '^' => {
                out.push('^');
                out.push(other);
            }
            // `^^`, or a lone `^` at the end.
            Some(_) | None => out.push('^'),
        }
    }
    out
}

/// Writes a parameter value: quoted when it contains `,`, `;` or `:`,
/// RFC 6868-encoded when it contains `"`, `^` or a newline.
fn push_param_value(out: &mut String, v: &str, quoted: bool) {
    let quote = quoted || v.contains([',', ';', ':']);
    if quote {
        out.push('"');
    }
    for c in v.chars() {
        match c {
            '"' => out.push_str("^'"),
            '^' => out.push_str("^^"),
            '\n' => out.push_str("^n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    if quote {
        out.push('"');
    }
}

/// Decodes TEXT escapes: `\n` / `\N` newline, `\,` `\;` `\\`. An unknown
/// escape keeps the character after the backslash.
pub fn unescape_text(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// Encodes TEXT: backslash, `;`, `,` and newlines escaped (CR dropped).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Parses a whole iCalendar stream into its top-level components (usually
/// one VCALENDAR). Every error is an `InvalidInput` naming the line.
pub fn parse_components(input: &str) -> Result<Vec<Component>> {
    let mut roots = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    let mut last_line = 0;
    for (line, content) in unfold(input) {
        last_line = line;
        let prop = parse_content_line(&content, line)?;
        match prop.name.as_str() {
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if name.is_empty() || !name.chars().all(is_name_char) {
                    return Err(error_at(
                        line,
                        format!("invalid component name {:?}", prop.value),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(error_at(
                        line,
                        format!("components nested deeper than {MAX_DEPTH}"),
                    ));
                }
                stack.push(Component {
                    name,
                    properties: Vec::new(),
                    components: Vec::new(),
                    line,
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let Some(done) = stack.pop() else {
                    return Err(error_at(
                        line,
                        format!("END:{name} without a matching BEGIN"),
                    ));
                };
                if done.name != name {
                    return Err(error_at(
                        line,
                        format!(
                            "END:{name} does not close BEGIN:{} (line {})",
                            done.name, done.line
                        ),
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.components.push(done),
                    None => roots.push(done),
                }
            }
            _ => match stack.last_mut() {
                Some(current) => current.properties.push(prop),
                None => {
                    return Err(error_at(
                        line,
                        format!("property {} outside of any component", prop.name),
                    ));
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        return Err(error_at(
            last_line,
            format!("input ends inside BEGIN:{} (line {})", open.name, open.line),
        ));
    }
    Ok(roots)
}

/// Appends `line` to `out` folded at 75 octets (never inside a UTF-8
/// character), each physical line ending in CRLF.
pub fn push_folded(out: &mut String, line: &str) {
    const LIMIT: usize = 75;
    let mut rest = line;
    let mut first = true;
    loop {
        // A continuation line starts with a space, which counts.
        let room = if first { LIMIT } else { LIMIT - 1 };
        if !first {
            out.push(' ');
        }
        if rest.len() <= room {
            out.push_str(rest);
            out.push_str("\r\n");
            return;
        }
        let mut cut = room;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n");
        rest = &rest[cut..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_crlf_lf_space_and_tab() {
        let input = "BEGIN:VCALENDAR\r\nDESCRIPTION:a\r\n  b\r\n\tc\nX:1\n\nEND:VCALENDAR";
        let lines: Vec<(usize, String)> = unfold(input).map(|(n, l)| (n, l.into_owned())).collect();
        assert_eq!(
            lines,
            vec![
                (1, "BEGIN:VCALENDAR".to_owned()),
                (2, "DESCRIPTION:a bc".to_owned()),
                (5, "X:1".to_owned()),
                (7, "END:VCALENDAR".to_owned()),
            ]
        );
    }

    #[test]
    fn parameters_quoted_multi_and_caret() {
        let p = Property::parse(
            r#"ATTENDEE;CN="Doe, John";DELEGATED-TO="mailto:a@x.org","mailto:b@x.org";X-Q=a^'b^nc:mailto:j@x.org"#,
        )
        .unwrap();
        assert_eq!(p.name, "ATTENDEE");
        assert_eq!(p.param("cn"), Some("Doe, John"));
        assert_eq!(p.params[1].values, ["mailto:a@x.org", "mailto:b@x.org"]);
        assert_eq!(p.param("X-Q"), Some("a\"b\nc"));
        assert_eq!(p.value, "mailto:j@x.org");
        // Written back and read again: the same property.
        assert_eq!(Property::parse(&p.to_line()).unwrap(), p);
    }

    #[test]
    fn text_escapes_round_trip() {
        let raw = r"a\, b\; c\\ d\ne\N";
        assert_eq!(unescape_text(raw), "a, b; c\\ d\ne\n");
        let s = "x;y,z\\w\nv";
        assert_eq!(unescape_text(&escape_text(s)), s);
    }

    #[test]
    fn folding_respects_char_boundaries_and_75_octets() {
        let line = format!("SUMMARY:{}", "日本語のテキスト".repeat(10));
        let mut out = String::new();
        push_folded(&mut out, &line);
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(physical.len() <= 75, "{} octets", physical.len());
        }
        let back: Vec<_> = unfold(&out).map(|(_, l)| l.into_owned()).collect();
        assert_eq!(back, [line]);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_components("BEGIN:VCALENDAR\nVERSION:2.0\nBAD LINE\nEND:VCALENDAR\n")
            .unwrap_err();
        assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
        assert!(err.message().contains("line 3"), "{err}");
        let err = parse_components("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n").unwrap_err();
        assert!(err.message().contains("line 3"), "{err}");
        let err = parse_components("BEGIN:VCALENDAR\nX;P=\"open:1\n").unwrap_err();
        assert!(err.message().contains("line 2"), "{err}");
        let err = parse_components("BEGIN:VCALENDAR\n").unwrap_err();
        assert!(err.message().contains("ends inside"), "{err}");
        assert!(parse_components(&"BEGIN:X\n".repeat(40)).is_err());
    }
}
