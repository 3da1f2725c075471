//! Stripe's form encoding of nested parameters.
//!
//! Stripe takes `application/x-www-form-urlencoded` bodies in which nesting
//! is spelled with square brackets: a hash member is `parent[key]`
//! (`metadata[booking_id]=b-1`) and an array element is `parent[index]`
//! (`payment_method_types[0]=card`,
//! `line_items[0][price_data][unit_amount]=2500`). [`Param`] is a value tree
//! kept in insertion order, and [`encode`] flattens it into the pairs sent.

use flextime_core::{Error, Result};

/// One parameter value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Text, sent as is.
    Str(String),
    /// An integer (amounts are always integers).
    Int(i64),
    /// `true` or `false`.
    Bool(bool),
    /// A hash: `name[key]=...` per member, in this order.
    Map(Vec<(String, Param)>),
    /// An array: `name[0]=...`, `name[1]=...`.
    List(Vec<Param>),
}

impl Param {
    /// An empty hash to [`push`](Self::push) members into.
    pub fn map() -> Self {
        Self::Map(Vec::new())
    }

    /// Adds a member to a hash (ignored on other values).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Param>) -> Self {
        self.push(key, value);
        self
    }

    /// Adds a member to a hash (ignored on other values).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Param>) {
        if let Self::Map(members) = self {
            members.push((key.into(), value.into()));
        }
    }

    /// Adds a member when `value` is `Some`.
    pub fn push_opt<V: Into<Param>>(&mut self, key: &str, value: Option<V>) {
        if let Some(v) = value {
            self.push(key, v);
        }
    }

    /// A hash of text values (metadata), in key order.
    pub fn strings<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        Self::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.clone(), Self::Str(v.clone())))
                .collect(),
        )
    }
}

impl From<&str> for Param {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<&String> for Param {
    fn from(s: &String) -> Self {
        Self::Str(s.clone())
    }
}

impl From<String> for Param {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<i64> for Param {
    fn from(n: i64) -> Self {
        Self::Int(n)
    }
}

impl From<bool> for Param {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl<T: Into<Param>> From<Vec<T>> for Param {
    fn from(items: Vec<T>) -> Self {
        Self::List(items.into_iter().map(Into::into).collect())
    }
}

/// Flattens a top-level hash into `(name, value)` pairs in Stripe's bracket
/// notation. Empty hashes and arrays send nothing. A key that is empty or
/// holds `[` or `]` would change the nesting, so it is a typed
/// `InvalidInput`, as is a top level that is not a hash.
pub fn encode(params: &Param) -> Result<Vec<(String, String)>> {
    let Param::Map(members) = params else {
        return Err(Error::invalid_input(
            "stripe: form parameters must be a hash at the top level",
        ));
    };
    let mut out = Vec::new();
    for (key, value) in members {
        check_key(key)?;
        flatten(key.clone(), value, &mut out)?;
    }
    Ok(out)
}

/// The pairs as the `application/x-www-form-urlencoded` body sent.
pub fn to_body(pairs: &[(String, String)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        body.append_pair(k, v);
    }
    body.finish()
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains(['[', ']']) {
        return Err(Error::invalid_input(format!(
            "stripe: parameter key {key:?} must be non-empty and hold no [ or ]"
        )));
    }
    Ok(())
}

fn flatten(name: String, value: &Param, out: &mut Vec<(String, String)>) -> Result<()> {
    match value {
        Param::Str(s) => out.push((name, s.clone())),
        Param::Int(n) => out.push((name, n.to_string())),
        Param::Bool(b) => out.push((name, b.to_string())),
        Param::Map(members) => {
            for (key, member) in members {
                check_key(key)?;
                flatten(format!("{name}[{key}]"), member, out)?;
            }
        }
        Param::List(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{name}[{i}]"), item, out)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &Param) -> Vec<(String, String)> {
        encode(p).unwrap()
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn scalars_are_sent_as_text() {
        let p = Param::map()
            .with("amount", 2500)
            .with("currency", "eur")
            .with("confirm", true)
            .with("off_session", false);
        assert_eq!(
            pairs(&p),
            kv(&[
                ("amount", "2500"),
                ("currency", "eur"),
                ("confirm", "true"),
                ("off_session", "false")
            ])
        );
        assert_eq!(
            to_body(&pairs(&p)),
            "amount=2500&currency=eur&confirm=true&off_session=false"
        );
    }

    #[test]
    fn hashes_nest_with_brackets() {
        let p = Param::map().with(
            "metadata",
            Param::map()
                .with("booking_id", "b-42")
                .with("room", "Salle 1"),
        );
        assert_eq!(
            pairs(&p),
            kv(&[
                ("metadata[booking_id]", "b-42"),
                ("metadata[room]", "Salle 1")
            ])
        );
        assert_eq!(
            to_body(&pairs(&p)),
            "metadata%5Bbooking_id%5D=b-42&metadata%5Broom%5D=Salle+1"
        );
    }

    #[test]
    fn arrays_are_indexed_from_zero() {
        let p = Param::map().with("payment_method_types", vec!["card", "sepa_debit"]);
        assert_eq!(
            pairs(&p),
            kv(&[
                ("payment_method_types[0]", "card"),
                ("payment_method_types[1]", "sepa_debit")
            ])
        );
        assert_eq!(
            to_body(&pairs(&p)),
            "payment_method_types%5B0%5D=card&payment_method_types%5B1%5D=sepa_debit"
        );
    }

    #[test]
    fn arrays_of_hashes_nest_all_the_way_down() {
        let item = Param::map()
            .with(
                "price_data",
                Param::map()
                    .with("currency", "eur")
                    .with("unit_amount", 2500)
                    .with(
                        "product_data",
                        Param::map().with("name", "Deposit for booking b-42"),
                    ),
            )
            .with("quantity", 1);
        let p = Param::map()
            .with("mode", "payment")
            .with("line_items", Param::List(vec![item]));
        assert_eq!(
            pairs(&p),
            kv(&[
                ("mode", "payment"),
                ("line_items[0][price_data][currency]", "eur"),
                ("line_items[0][price_data][unit_amount]", "2500"),
                (
                    "line_items[0][price_data][product_data][name]",
                    "Deposit for booking b-42"
                ),
                ("line_items[0][quantity]", "1"),
            ])
        );
        assert_eq!(
            to_body(&pairs(&p)),
            "mode=payment\
             &line_items%5B0%5D%5Bprice_data%5D%5Bcurrency%5D=eur\
             &line_items%5B0%5D%5Bprice_data%5D%5Bunit_amount%5D=2500\
             &line_items%5B0%5D%5Bprice_data%5D%5Bproduct_data%5D%5Bname%5D=Deposit+for+booking+b-42\
             &line_items%5B0%5D%5Bquantity%5D=1"
        );
    }

    #[test]
    fn values_are_percent_encoded_and_empty_containers_send_nothing() {
        let p = Param::map()
            .with(
                "success_url",
                "https://x.test/ok?b=1&s={CHECKOUT_SESSION_ID}",
            )
            .with("metadata", Param::map())
            .with("expand", Param::List(vec![]))
            .with("description", "Caf\u{e9} & co");
        assert_eq!(
            to_body(&pairs(&p)),
            "success_url=https%3A%2F%2Fx.test%2Fok%3Fb%3D1%26s%3D%7BCHECKOUT_SESSION_ID%7D\
             &description=Caf%C3%A9+%26+co"
        );
    }

    #[test]
    fn keys_that_would_change_the_nesting_are_refused() {
        for bad in ["", "a[b]", "x]", "[0]"] {
            let p = Param::map().with("metadata", Param::map().with(bad, "v"));
            let err = encode(&p).unwrap_err();
            assert_eq!(err.kind(), flextime_core::ErrorKind::InvalidInput);
            let top = Param::map().with(bad, "v");
            assert!(encode(&top).is_err());
        }
        assert!(encode(&Param::Str("x".into())).is_err());
        assert!(encode(&Param::List(vec![])).is_err());
    }

    #[test]
    fn strings_keep_key_order() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("z".to_owned(), "1".to_owned());
        m.insert("a".to_owned(), "2".to_owned());
        let p = Param::map().with("metadata", Param::strings(&m));
        assert_eq!(pairs(&p), kv(&[("metadata[a]", "2"), ("metadata[z]", "1")]));
    }
}
