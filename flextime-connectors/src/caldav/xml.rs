//! WebDAV XML: a small namespace-aware element tree read with quick-xml, the
//! `DAV:multistatus` model built on it, and the request bodies.
//!
//! Elements are matched by namespace URI and local name, never by prefix, so
//! `<D:href>`, `<href xmlns="DAV:">` and `<x:href xmlns:x="DAV:">` are the
//! same element. Anything malformed (bad XML, an unknown prefix, a missing
//! `href`, a status line that is not one) is a `Permanent` error naming what
//! was wrong; nothing here panics.

use flextime_core::{Error, Result};
use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The WebDAV namespace.
pub const DAV: &str = "DAV:";
/// The CalDAV namespace (RFC 4791).
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// The CalendarServer namespace (`getctag`).
pub const CALENDARSERVER: &str = "http://calendarserver.org/ns/";
/// Apple's iCal namespace (`calendar-color`).
pub const APPLE_ICAL: &str = "http://apple.com/ns/ical/";

/// How deep a response may nest before it is refused.
const MAX_DEPTH: usize = 64;

/// One XML element: namespace URI, local name, attributes (by local name),
/// children and the concatenated text directly inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// The namespace URI (empty when unbound).
    pub ns: String,
    /// The local name.
    pub name: String,
    /// Attributes as (local name, unescaped value).
    pub attrs: Vec<(String, String)>,
    /// Child elements in order.
    pub children: Vec<Element>,
    /// The text directly inside this element (entities resolved).
    pub text: String,
}

impl Element {
    /// Whether this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child `{ns}name`.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// Every child `{ns}name`.
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The attribute with local name `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text, trimmed.
    pub fn trimmed(&self) -> &str {
        self.text.trim()
    }
}

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::permanent(format!("caldav: malformed XML response: {what}"))
}

fn start_element(reader: &NsReader<&[u8]>, e: &BytesStart<'_>) -> Result<Element> {
    let (ns, _) = reader.resolve_element(e.name());
    let ns = match ns {
        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(prefix) => {
            return Err(malformed(format!(
                "unknown namespace prefix {:?}",
                String::from_utf8_lossy(&prefix)
            )));
        }
    };
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(malformed)?;
        let (_, local) = reader.resolve_attribute(attr.key);
        let key = String::from_utf8_lossy(local.as_ref()).into_owned();
        if key == "xmlns" || attr.key.as_ref().starts_with(b"xmlns:") {
            continue;
        }
        let value = attr
            .decode_and_unescape_value(reader.decoder())
            .map_err(malformed)?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        ns,
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Parses a whole XML document into its root element.
pub fn parse(xml: &str) -> Result<Element> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(format!(
                        "nested deeper than {MAX_DEPTH} elements"
                    )));
                }
                let el = start_element(&reader, &e)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                let el = start_element(&reader, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| malformed("an end tag without a start tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(malformed)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(t) => {
                let text = t.decode().map_err(malformed)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None => return Err(malformed("CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                let el = stack
                    .last_mut()
                    .ok_or_else(|| malformed("an entity outside the root element"))?;
                if let Some(c) = r.resolve_char_ref().map_err(malformed)? {
                    el.text.push(c);
                } else {
                    let name = r.decode().map_err(malformed)?;
                    let value = resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed(format!("unknown entity &{name};")))?;
                    el.text.push_str(value);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

/// The numeric code of an HTTP status line (`HTTP/1.1 404 Not Found`).
pub fn status_code(line: &str) -> Result<u16> {
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..=599).contains(code))
        .ok_or_else(|| malformed(format!("{:?} is not an HTTP status line", line.trim())))
}

/// One `DAV:propstat`: a status and the properties it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropStat {
    /// The status code.
    pub status: u16,
    /// The children of `DAV:prop`.
    pub props: Vec<Element>,
}

/// One `DAV:response` of a multistatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavResponse {
    /// The first `DAV:href` (as sent: percent-encoded path or URL).
    pub href: String,
    /// The response-level `DAV:status`, if any (a 404 in a sync report).
    pub status: Option<u16>,
    /// The propstats.
    pub propstats: Vec<PropStat>,
}

impl DavResponse {
    /// The property `{ns}name` from a 2xx propstat.
    pub fn prop(&self, ns: &str, name: &str) -> Option<&Element> {
        self.propstats
            .iter()
            .filter(|p| (200..300).contains(&p.status))
            .flat_map(|p| p.props.iter())
            .find(|p| p.is(ns, name))
    }

    /// The trimmed text of property `{ns}name`, when it is there and not empty.
    pub fn prop_text(&self, ns: &str, name: &str) -> Option<String> {
        self.prop(ns, name)
            .map(Element::trimmed)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }

    /// The `DAV:href` inside property `{ns}name` (current-user-principal,
    /// calendar-home-set).
    pub fn prop_href(&self, ns: &str, name: &str) -> Option<String> {
        self.prop(ns, name)?
            .child(DAV, "href")
            .map(Element::trimmed)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }
}

/// A `DAV:multistatus` (RFC 4918 section 14.16, with RFC 6578's sync-token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiStatus {
    /// The responses in order.
    pub responses: Vec<DavResponse>,
    /// The `DAV:sync-token` of a sync-collection report.
    pub sync_token: Option<String>,
}

/// Parses a multistatus body.
pub fn parse_multistatus(xml: &str) -> Result<MultiStatus> {
    let root = parse(xml)?;
    if !root.is(DAV, "multistatus") {
        return Err(malformed(format!(
            "expected DAV:multistatus, found {{{}}}{}",
            root.ns, root.name
        )));
    }
    let mut out = MultiStatus {
        sync_token: root
            .child(DAV, "sync-token")
            .map(|t| t.trimmed().to_owned())
            .filter(|t| !t.is_empty()),
        responses: Vec::new(),
    };
    for resp in root.children_named(DAV, "response") {
        let href = resp
            .child(DAV, "href")
            .map(|h| h.trimmed().to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| malformed("a DAV:response without a DAV:href"))?;
        let status = resp
            .child(DAV, "status")
            .map(|s| status_code(&s.text))
            .transpose()?;
        let mut propstats = Vec::new();
        for ps in resp.children_named(DAV, "propstat") {
            let status = ps
                .child(DAV, "status")
                .ok_or_else(|| malformed(format!("a propstat of {href} without a status")))?;
            let status = status_code(&status.text)?;
            let props = ps
                .child(DAV, "prop")
                .map(|p| p.children.clone())
                .unwrap_or_default();
            propstats.push(PropStat { status, props });
        }
        if status.is_none() && propstats.is_empty() {
            return Err(malformed(format!(
                "the DAV:response for {href} has neither a status nor a propstat"
            )));
        }
        out.responses.push(DavResponse {
            href,
            status,
            propstats,
        });
    }
    Ok(out)
}

/// Whether `body` is a `DAV:error` holding the precondition `{ns}name`.
pub fn is_precondition(body: &str, ns: &str, name: &str) -> bool {
    parse(body).is_ok_and(|root| root.is(DAV, "error") && root.child(ns, name).is_some())
}

/// XML-escapes text for a request body.
pub fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text)
}

const PROLOG: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// A PROPFIND body asking for `props` (each already qualified with one of the
/// prefixes `D`, `C`, `CS`, `A`).
pub fn propfind(props: &[&str]) -> String {
    let mut body = format!(
        r#"{PROLOG}<D:propfind xmlns:D="{DAV}" xmlns:C="{CALDAV}" xmlns:CS="{CALENDARSERVER}" xmlns:A="{APPLE_ICAL}"><D:prop>"#
    );
    for p in props {
        body.push('<');
        body.push_str(p);
        body.push_str("/>");
    }
    body.push_str("</D:prop></D:propfind>");
    body
}

/// A sync-collection REPORT body (RFC 6578) asking for etags.
pub fn sync_collection(token: Option<&str>) -> String {
    let token = token.map(esc).unwrap_or_default();
    format!(
        r#"{PROLOG}<D:sync-collection xmlns:D="{DAV}"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
    )
}

/// A calendar-multiget REPORT body (RFC 4791 section 7.9) for `hrefs`.
pub fn calendar_multiget<S: AsRef<str>>(hrefs: &[S]) -> String {
    let mut body = format!(
        r#"{PROLOG}<C:calendar-multiget xmlns:D="{DAV}" xmlns:C="{CALDAV}"><D:prop><D:getetag/><C:calendar-data/></D:prop>"#
    );
    for href in hrefs {
        body.push_str("<D:href>");
        body.push_str(&esc(href.as_ref()));
        body.push_str("</D:href>");
    }
    body.push_str("</C:calendar-multiget>");
    body
}

/// A calendar-query REPORT body (RFC 4791 section 7.8) for the VEVENTs that
/// overlap `[start, end)` (UTC `YYYYMMDDTHHMMSSZ`).
pub fn calendar_query(start: &str, end: &str) -> String {
    format!(
        r#"{PROLOG}<C:calendar-query xmlns:D="{DAV}" xmlns:C="{CALDAV}"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{}" end="{}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#,
        esc(start),
        esc(end)
    )
}

/// An MKCALENDAR body (RFC 4791 section 5.3.1) for a VEVENT calendar.
pub fn mkcalendar(display_name: &str, description: Option<&str>) -> String {
    let description = description
        .map(|d| {
            format!(
                "<C:calendar-description>{}</C:calendar-description>",
                esc(d)
            )
        })
        .unwrap_or_default();
    format!(
        r#"{PROLOG}<C:mkcalendar xmlns:D="{DAV}" xmlns:C="{CALDAV}"><D:set><D:prop><D:displayname>{}</D:displayname>{description}<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#,
        esc(display_name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_matched_by_uri_not_prefix() {
        let xml = r#"<?xml version="1.0"?>
<x:multistatus xmlns:x="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">
  <x:sync-token>tok-1</x:sync-token>
  <response xmlns="DAV:">
    <href>/u/c/a%20b.ics</href>
    <propstat>
      <prop><getetag>"e1"</getetag><cal:calendar-data>BEGIN:VCALENDAR&#13;
X:a &amp; b&lt;
END:VCALENDAR</cal:calendar-data></prop>
      <status>HTTP/1.1 200 OK</status>
    </propstat>
  </response>
  <x:response><x:href>/u/c/gone.ics</x:href><x:status>HTTP/1.1 404 Not Found</x:status></x:response>
</x:multistatus>"#;
        let ms = parse_multistatus(xml).unwrap();
        assert_eq!(ms.sync_token.as_deref(), Some("tok-1"));
        assert_eq!(ms.responses.len(), 2);
        let first = &ms.responses[0];
        assert_eq!(first.href, "/u/c/a%20b.ics");
        assert_eq!(first.prop_text(DAV, "getetag").as_deref(), Some("\"e1\""));
        let data = &first.prop(CALDAV, "calendar-data").unwrap().text;
        assert!(data.contains("BEGIN:VCALENDAR\r\nX:a & b<\n"), "{data:?}");
        assert_eq!(ms.responses[1].status, Some(404));
    }

    #[test]
    fn cdata_and_attributes() {
        let xml = r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response><D:href>/c/</D:href><D:propstat><D:prop><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set><C:calendar-data><![CDATA[a<b]]></C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#;
        let ms = parse_multistatus(xml).unwrap();
        let set = ms.responses[0]
            .prop(CALDAV, "supported-calendar-component-set")
            .unwrap();
        assert_eq!(
            set.child(CALDAV, "comp").unwrap().attr("name"),
            Some("VEVENT")
        );
        assert_eq!(
            ms.responses[0]
                .prop_text(CALDAV, "calendar-data")
                .as_deref(),
            Some("a<b")
        );
    }

    #[test]
    fn malformed_bodies_are_typed_errors() {
        for bad in [
            "",
            "not xml",
            "<D:multistatus xmlns:D=\"DAV:\">",
            "<D:multistatus xmlns:D=\"DAV:\"></D:other>",
            "<q:multistatus/>",
            "<multistatus xmlns=\"urn:x\"/>",
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:status>HTTP/1.1 200 OK</D:status></D:response></D:multistatus>",
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/a</D:href><D:status>bogus</D:status></D:response></D:multistatus>",
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>/a</D:href></D:response></D:multistatus>",
            "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&bogus;</D:href></D:response></D:multistatus>",
            "<a/><b/>",
        ] {
            let err = parse_multistatus(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                flextime_core::ErrorKind::Permanent,
                "{bad:?}: {err}"
            );
        }
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn preconditions_and_bodies() {
        assert!(is_precondition(
            r#"<?xml version='1.0'?><error xmlns="DAV:"><valid-sync-token /></error>"#,
            DAV,
            "valid-sync-token"
        ));
        assert!(!is_precondition(
            "<error xmlns=\"DAV:\"/>",
            DAV,
            "valid-sync-token"
        ));
        assert!(!is_precondition("garbage", DAV, "valid-sync-token"));
        let body = sync_collection(Some("a<b"));
        assert!(body.contains("<D:sync-token>a&lt;b</D:sync-token>"));
        assert!(parse(&calendar_multiget(&["/a&b.ics"])).is_ok());
        assert!(parse(&calendar_query("20240101T000000Z", "20240102T000000Z")).is_ok());
        assert!(parse(&mkcalendar("<Team>", Some("d"))).is_ok());
        assert!(parse(&propfind(&["D:displayname", "CS:getctag"])).is_ok());
    }
}
