//! Taking payments: the [`PaymentGateway`] capability.
//!
//! - Amounts are [`Money`]: an integer number of the currency's minor units
//!   (cents; yen for a zero-decimal currency) and a validated ISO 4217
//!   [`Currency`]. There are no floats anywhere.
//! - Every write names the booking it is for. The gateway derives its
//!   idempotency key from the booking id and the operation
//!   ([`idempotency_key`]), so a retry, even after a crash and a restart,
//!   reuses the key and the provider does the work once.
//! - The request types ([`NewCustomer`], [`NewPaymentIntent`],
//!   [`DepositCheckout`], [`NewRefund`] ...) are validated before any
//!   request, with a typed `InvalidInput` error naming the field.
//! - Backends: Stripe (feature `stripe`, [`stripe`]), with its webhook events
//!   parsed into a typed enum ([`stripe::StripeEvent`]).

#[cfg(feature = "stripe")]
pub mod stripe;

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use flextime_core::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

/// The largest amount accepted (Stripe's eight digits of minor units).
pub const MAX_AMOUNT: i64 = 99_999_999;

/// ISO 4217 codes of the currencies Stripe can charge in.
const CURRENCIES: &[&str] = &[
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jod", "jpy", "kes", "kgs", "khr", "kmf", "krw",
    "kwd", "kyd", "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk",
    "mnt", "mop", "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr",
    "nzd", "omr", "pab", "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub",
    "rwf", "sar", "sbd", "scr", "sek", "sgd", "shp", "sle", "sll", "sos", "srd", "std", "szl",
    "thb", "tjs", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd", "uyu", "uzs",
    "vnd", "vuv", "wst", "xaf", "xcd", "xof", "xpf", "yer", "zar", "zmw",
];

/// Currencies whose amounts have no minor unit (`¥100` is `100`).
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// Currencies with three decimals (`1.000 KWD` is `1000`).
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// A validated ISO 4217 currency code, lowercase as Stripe spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    /// Parses a three-letter code in any case (`EUR`, `eur`); an unknown
    /// code is a typed `InvalidInput`.
    pub fn new(code: &str) -> Result<Self> {
        let lower = code.trim().to_ascii_lowercase();
        if CURRENCIES.binary_search(&lower.as_str()).is_ok() {
            Ok(Self(lower))
        } else {
            Err(Error::invalid_input(format!(
                "payments: currency {code:?} is not a supported ISO 4217 code"
            )))
        }
    }

    /// The lowercase code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point: 0 (JPY), 2 (EUR) or 3 (KWD).
    pub fn decimals(&self) -> u8 {
        if ZERO_DECIMAL.contains(&self.0.as_str()) {
            0
        } else if THREE_DECIMAL.contains(&self.0.as_str()) {
            3
        } else {
            2
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// An amount in a currency's minor units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr")]
pub struct Money {
    amount: i64,
    currency: Currency,
}

#[derive(Deserialize)]
struct MoneyRepr {
    amount: i64,
    currency: String,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = Error;

    fn try_from(repr: MoneyRepr) -> Result<Self> {
        Self::new(repr.amount, &repr.currency)
    }
}

impl Money {
    /// `amount` minor units (cents) of `currency`: 1 to 99 999 999, and a
    /// known currency, or a typed `InvalidInput`.
    pub fn new(amount: i64, currency: &str) -> Result<Self> {
        let currency = Currency::new(currency)?;
        validate_amount("amount", amount)?;
        Ok(Self { amount, currency })
    }

    /// The amount in minor units.
    pub fn amount(&self) -> i64 {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = u32::from(self.currency.decimals());
        let scale = 10_i64.pow(decimals);
        let (units, minor) = (self.amount / scale, self.amount % scale);
        if decimals == 0 {
            write!(f, "{units} {}", self.currency.as_str().to_ascii_uppercase())
        } else {
            write!(
                f,
                "{units}.{minor:0width$} {}",
                self.currency.as_str().to_ascii_uppercase(),
                width = decimals as usize
            )
        }
    }
}

fn validate_amount(field: &str, amount: i64) -> Result<()> {
    if (1..=MAX_AMOUNT).contains(&amount) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "payments: {field} {amount} must be 1 to {MAX_AMOUNT} minor units"
        )))
    }
}

/// The operations that carry an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Create a customer.
    CreateCustomer,
    /// Create a PaymentIntent.
    CreatePaymentIntent,
    /// Confirm a PaymentIntent.
    ConfirmPaymentIntent,
    /// Capture a PaymentIntent.
    CapturePaymentIntent,
    /// Cancel a PaymentIntent.
    CancelPaymentIntent,
    /// Create a Checkout Session.
    CreateCheckoutSession,
    /// Create a refund.
    CreateRefund,
}

impl Operation {
    /// A stable name, part of the idempotency key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateCustomer => "customer.create",
            Self::CreatePaymentIntent => "payment_intent.create",
            Self::ConfirmPaymentIntent => "payment_intent.confirm",
            Self::CapturePaymentIntent => "payment_intent.capture",
            Self::CancelPaymentIntent => "payment_intent.cancel",
            Self::CreateCheckoutSession => "checkout_session.create",
            Self::CreateRefund => "refund.create",
        }
    }
}

/// The idempotency key of `operation` for `booking_id` (and `target`, the
/// object acted on: a PaymentIntent id for confirm/capture/cancel, empty
/// otherwise): `flextime-<operation>-<32 hex digits of SHA-256>`. The same
/// inputs always give the same key, so a retry after a crash is recognised
/// by the provider; a different booking, operation or target gives another.
/// Stripe refuses a key reused with different parameters (a 400
/// `idempotency_error`): a second, different payment for the same booking
/// needs a distinct booking id (`b-42/2`).
pub fn idempotency_key(booking_id: &str, operation: Operation, target: &str) -> String {
    let mut hash = Sha256::new();
    for part in [booking_id, operation.as_str(), target] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let hex = digest[..16]
        .iter()
        .fold(String::with_capacity(32), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        });
    format!("flextime-{}-{hex}", operation.as_str())
}

/// Checks a booking id: 1 to 500 characters (a metadata value's limit).
fn validate_booking_id(booking_id: &str) -> Result<()> {
    let chars = booking_id.chars().count();
    if chars == 0 || chars > 500 || booking_id.trim().is_empty() {
        return Err(Error::invalid_input(
            "payments: booking_id must be 1 to 500 characters, not blank",
        ));
    }
    Ok(())
}

/// Checks a provider object id used in a URL path: 1 to 255 ASCII letters,
/// digits and underscores (`cus_...`, `pi_...`).
pub fn validate_id(field: &str, id: &str) -> Result<()> {
    let ok =
        (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "payments: {field} {id:?} is not an object id (letters, digits and _)"
        )))
    }
}

/// Checks metadata: at most 50 keys of at most 40 characters without square
/// brackets, values of at most 500 characters.
fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > 50 {
        return Err(Error::invalid_input(
            "payments: metadata has more than 50 keys",
        ));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.chars().count() > 40 || k.contains(['[', ']']) {
            return Err(Error::invalid_input(format!(
                "payments: metadata key {k:?} must be 1 to 40 characters without [ or ]"
            )));
        }
        if v.chars().count() > 500 {
            return Err(Error::invalid_input(format!(
                "payments: metadata value of {k:?} is longer than 500 characters"
            )));
        }
    }
    Ok(())
}

fn validate_url(field: &str, url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Error::invalid_input(format!("payments: {field} {url:?} is not a URL: {e}"))
    })?;
    if matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some() {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "payments: {field} {url:?} must be an http(s) URL with a host"
        )))
    }
}

fn validate_email(field: &str, email: &str) -> Result<()> {
    let ok = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && email.len() <= 512
        && !email.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "payments: {field} {email:?} is not an email address"
        )))
    }
}

/// A customer to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCustomer {
    /// Your id of the customer (a Flextime user or account id): it scopes
    /// the idempotency key and is stored in `metadata[flextime_ref]`.
    pub reference: String,
    /// Email.
    pub email: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// More metadata.
    pub metadata: BTreeMap<String, String>,
}

impl NewCustomer {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        validate_booking_id(&self.reference)
            .map_err(|_| Error::invalid_input("payments: reference must be 1 to 500 characters"))?;
        if let Some(email) = &self.email {
            validate_email("email", email)?;
        }
        validate_metadata(&self.metadata)
    }
}

/// When the money moves after a payment is authorised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureMethod {
    /// At once.
    #[default]
    Automatic,
    /// Only when captured (a hold, e.g. a deposit taken at check-in).
    Manual,
}

impl CaptureMethod {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "automatic",
            Self::Manual => "manual",
        }
    }
}

/// A PaymentIntent to create for a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPaymentIntent {
    /// The booking paid for (metadata `booking_id`, idempotency scope).
    pub booking_id: String,
    /// The amount.
    pub amount: Money,
    /// The customer id (`cus_...`).
    pub customer: Option<String>,
    /// Description shown in the dashboard.
    pub description: Option<String>,
    /// When the money moves.
    pub capture_method: CaptureMethod,
    /// Allowed payment method types (`card` ...); empty lets the provider
    /// choose.
    pub payment_method_types: Vec<String>,
    /// A payment method to charge (`pm_...`).
    pub payment_method: Option<String>,
    /// Where the receipt goes.
    pub receipt_email: Option<String>,
    /// More metadata.
    pub metadata: BTreeMap<String, String>,
}

impl NewPaymentIntent {
    /// A PaymentIntent of `amount` for `booking_id`, captured automatically.
    pub fn new(booking_id: impl Into<String>, amount: Money) -> Self {
        Self {
            booking_id: booking_id.into(),
            amount,
            customer: None,
            description: None,
            capture_method: CaptureMethod::Automatic,
            payment_method_types: Vec::new(),
            payment_method: None,
            receipt_email: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        validate_booking_id(&self.booking_id)?;
        validate_amount("amount", self.amount.amount)?;
        if let Some(c) = &self.customer {
            validate_id("customer", c)?;
        }
        if let Some(pm) = &self.payment_method {
            validate_id("payment_method", pm)?;
        }
        for t in &self.payment_method_types {
            validate_id("payment_method_types", t)?;
        }
        if let Some(email) = &self.receipt_email {
            validate_email("receipt_email", email)?;
        }
        validate_metadata(&self.metadata)
    }
}

/// Confirming a PaymentIntent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmPayment {
    /// The booking (idempotency scope).
    pub booking_id: String,
    /// The payment method to confirm with (`pm_...`).
    pub payment_method: Option<String>,
    /// Where the customer returns after a redirect-based method.
    pub return_url: Option<String>,
}

/// Capturing a PaymentIntent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturePayment {
    /// The booking (idempotency scope).
    pub booking_id: String,
    /// Capture less than the authorised amount (minor units).
    pub amount_to_capture: Option<i64>,
}

/// Why a PaymentIntent is canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancellationReason {
    /// The customer left.
    Abandoned,
    /// A duplicate payment.
    Duplicate,
    /// Suspected fraud.
    Fraudulent,
    /// The customer asked.
    RequestedByCustomer,
}

impl CancellationReason {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Abandoned => "abandoned",
            Self::Duplicate => "duplicate",
            Self::Fraudulent => "fraudulent",
            Self::RequestedByCustomer => "requested_by_customer",
        }
    }
}

/// Canceling a PaymentIntent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CancelPayment {
    /// The booking (idempotency scope).
    pub booking_id: String,
    /// Why.
    pub reason: Option<CancellationReason>,
}

/// A hosted checkout page that takes a booking's deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositCheckout {
    /// The booking (metadata `booking_id` on the session and its
    /// PaymentIntent, `client_reference_id`, idempotency scope).
    pub booking_id: String,
    /// The deposit.
    pub amount: Money,
    /// The line item's product name (default `Deposit for booking <id>`).
    pub product_name: String,
    /// Where the customer lands after paying.
    pub success_url: String,
    /// Where the customer lands after giving up.
    pub cancel_url: String,
    /// An existing customer (`cus_...`).
    pub customer: Option<String>,
    /// Prefills the email (ignored when `customer` is set).
    pub customer_email: Option<String>,
    /// Allowed payment method types (`card` ...); empty lets the provider
    /// choose.
    pub payment_method_types: Vec<String>,
    /// When the money moves (`Manual` holds the deposit).
    pub capture_method: CaptureMethod,
    /// When the session expires (Unix seconds; Stripe accepts 30 minutes to
    /// 24 hours ahead and checks it).
    pub expires_at: Option<i64>,
    /// More metadata.
    pub metadata: BTreeMap<String, String>,
}

impl DepositCheckout {
    /// A deposit of `amount` for `booking_id`.
    pub fn new(
        booking_id: impl Into<String>,
        amount: Money,
        success_url: impl Into<String>,
        cancel_url: impl Into<String>,
    ) -> Self {
        let booking_id = booking_id.into();
        Self {
            product_name: format!("Deposit for booking {booking_id}"),
            booking_id,
            amount,
            success_url: success_url.into(),
            cancel_url: cancel_url.into(),
            customer: None,
            customer_email: None,
            payment_method_types: Vec::new(),
            capture_method: CaptureMethod::Automatic,
            expires_at: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        validate_booking_id(&self.booking_id)?;
        validate_amount("amount", self.amount.amount)?;
        let name = self.product_name.chars().count();
        if name == 0 || name > 5000 {
            return Err(Error::invalid_input(
                "payments: product_name must be 1 to 5000 characters",
            ));
        }
        validate_url("success_url", &self.success_url)?;
        validate_url("cancel_url", &self.cancel_url)?;
        if let Some(c) = &self.customer {
            validate_id("customer", c)?;
        }
        if let Some(email) = &self.customer_email {
            validate_email("customer_email", email)?;
        }
        for t in &self.payment_method_types {
            validate_id("payment_method_types", t)?;
        }
        validate_metadata(&self.metadata)
    }
}

/// Why a refund is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundReason {
    /// A duplicate charge.
    Duplicate,
    /// Fraud.
    Fraudulent,
    /// The customer asked (a cancelled booking).
    RequestedByCustomer,
}

impl RefundReason {
    /// Stripe's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Fraudulent => "fraudulent",
            Self::RequestedByCustomer => "requested_by_customer",
        }
    }
}

/// A refund of a booking's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    /// The booking (metadata `booking_id`, idempotency scope).
    pub booking_id: String,
    /// The PaymentIntent refunded (`pi_...`).
    pub payment_intent: String,
    /// A partial refund (minor units); `None` refunds what is left.
    pub amount: Option<i64>,
    /// Why.
    pub reason: Option<RefundReason>,
    /// More metadata.
    pub metadata: BTreeMap<String, String>,
}

impl NewRefund {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        validate_booking_id(&self.booking_id)?;
        validate_id("payment_intent", &self.payment_intent)?;
        if let Some(amount) = self.amount {
            validate_amount("amount", amount)?;
        }
        validate_metadata(&self.metadata)
    }
}

/// An id that may come expanded as an object (`"cus_1"` or `{"id": "cus_1", ...}`).
fn expandable<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Object(o)) => o
            .get("id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        _ => None,
    })
}

/// Metadata that may be `null`.
fn metadata<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// `cus_...`.
    pub id: String,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// True for a deleted customer.
    #[serde(default)]
    pub deleted: bool,
    /// Metadata.
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// The state of a PaymentIntent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentIntentStatus {
    /// Needs a payment method.
    RequiresPaymentMethod,
    /// Needs confirming.
    RequiresConfirmation,
    /// Needs the customer (3-D Secure, a redirect).
    RequiresAction,
    /// Being processed.
    Processing,
    /// Authorised, waiting for capture.
    RequiresCapture,
    /// Canceled.
    Canceled,
    /// Paid.
    Succeeded,
    /// A status this library does not know.
    #[serde(other)]
    Other,
}

/// Why the last payment attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentError {
    /// `card_error`, `invalid_request_error` ...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// `card_declined` ...
    #[serde(default)]
    pub code: Option<String>,
    /// `insufficient_funds` ...
    #[serde(default)]
    pub decline_code: Option<String>,
    /// A message for humans.
    #[serde(default)]
    pub message: Option<String>,
}

/// A PaymentIntent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    /// `pi_...`.
    pub id: String,
    /// The amount (minor units).
    pub amount: i64,
    /// What was received so far (minor units).
    #[serde(default)]
    pub amount_received: Option<i64>,
    /// The currency, as the provider sent it.
    pub currency: String,
    /// The state.
    pub status: PaymentIntentStatus,
    /// The customer id.
    #[serde(default, deserialize_with = "expandable")]
    pub customer: Option<String>,
    /// The secret the browser confirms with.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The latest charge id.
    #[serde(default, deserialize_with = "expandable")]
    pub latest_charge: Option<String>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_payment_error: Option<PaymentError>,
    /// Metadata (`booking_id` ...).
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

impl PaymentIntent {
    /// The booking it pays for (metadata `booking_id`).
    pub fn booking_id(&self) -> Option<&str> {
        self.metadata.get("booking_id").map(String::as_str)
    }
}

/// A Checkout Session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSession {
    /// `cs_...`.
    pub id: String,
    /// The hosted page to send the customer to (while open).
    #[serde(default)]
    pub url: Option<String>,
    /// `open`, `complete` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// `paid`, `unpaid` or `no_payment_required`.
    #[serde(default)]
    pub payment_status: Option<String>,
    /// The PaymentIntent, once there is one.
    #[serde(default, deserialize_with = "expandable")]
    pub payment_intent: Option<String>,
    /// `client_reference_id` (the booking id when created here).
    #[serde(default)]
    pub client_reference_id: Option<String>,
    /// The total (minor units).
    #[serde(default)]
    pub amount_total: Option<i64>,
    /// The currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// When it expires (Unix seconds).
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Metadata (`booking_id` ...).
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

impl CheckoutSession {
    /// The booking it is for (metadata `booking_id`, else
    /// `client_reference_id`).
    pub fn booking_id(&self) -> Option<&str> {
        self.metadata
            .get("booking_id")
            .map(String::as_str)
            .or(self.client_reference_id.as_deref())
    }
}

/// A refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// `re_...`.
    pub id: String,
    /// The amount (minor units).
    pub amount: i64,
    /// The currency.
    pub currency: String,
    /// `pending`, `succeeded`, `failed` ...
    #[serde(default)]
    pub status: Option<String>,
    /// The PaymentIntent refunded.
    #[serde(default, deserialize_with = "expandable")]
    pub payment_intent: Option<String>,
    /// The charge refunded.
    #[serde(default, deserialize_with = "expandable")]
    pub charge: Option<String>,
    /// Metadata (`booking_id` ...).
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// A charge (what `charge.refunded` carries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// `ch_...`.
    pub id: String,
    /// The amount (minor units).
    pub amount: i64,
    /// How much was refunded (minor units).
    #[serde(default)]
    pub amount_refunded: i64,
    /// The currency.
    pub currency: String,
    /// Whether it was refunded in full.
    #[serde(default)]
    pub refunded: bool,
    /// `succeeded`, `pending` or `failed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Its PaymentIntent.
    #[serde(default, deserialize_with = "expandable")]
    pub payment_intent: Option<String>,
    /// Metadata.
    #[serde(default, deserialize_with = "metadata")]
    pub metadata: BTreeMap<String, String>,
}

/// Takes payments for bookings.
#[async_trait::async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Creates a customer.
    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer>;

    /// Reads a customer.
    async fn retrieve_customer(&self, id: &str) -> Result<Customer>;

    /// Creates a PaymentIntent.
    async fn create_payment_intent(&self, intent: &NewPaymentIntent) -> Result<PaymentIntent>;

    /// Confirms a PaymentIntent.
    async fn confirm_payment_intent(
        &self,
        id: &str,
        confirm: &ConfirmPayment,
    ) -> Result<PaymentIntent>;

    /// Captures an authorised PaymentIntent.
    async fn capture_payment_intent(
        &self,
        id: &str,
        capture: &CapturePayment,
    ) -> Result<PaymentIntent>;

    /// Cancels a PaymentIntent.
    async fn cancel_payment_intent(
        &self,
        id: &str,
        cancel: &CancelPayment,
    ) -> Result<PaymentIntent>;

    /// Creates a hosted checkout page for a booking's deposit.
    async fn create_deposit_checkout(&self, checkout: &DepositCheckout) -> Result<CheckoutSession>;

    /// Refunds (part of) a payment.
    async fn refund(&self, refund: &NewRefund) -> Result<Refund>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use flextime_core::ErrorKind;

    #[test]
    fn the_currency_list_is_sorted_for_binary_search() {
        let mut sorted = CURRENCIES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, CURRENCIES);
    }

    #[test]
    fn money_is_integer_minor_units_of_a_known_currency() {
        let m = Money::new(2500, "EUR").unwrap();
        assert_eq!((m.amount(), m.currency().as_str()), (2500, "eur"));
        assert_eq!(m.to_string(), "25.00 EUR");
        assert_eq!(Money::new(500, "jpy").unwrap().to_string(), "500 JPY");
        assert_eq!(Money::new(1005, "kwd").unwrap().to_string(), "1.005 KWD");
        for (amount, currency, needle) in [
            (0, "eur", "amount"),
            (-5, "eur", "amount"),
            (100_000_000, "eur", "amount"),
            (100, "euro", "currency"),
            (100, "xyz", "currency"),
            (100, "", "currency"),
        ] {
            let err = Money::new(amount, currency).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn idempotency_keys_are_deterministic_and_distinct() {
        let a = idempotency_key("b-1", Operation::CreatePaymentIntent, "");
        assert_eq!(
            a,
            idempotency_key("b-1", Operation::CreatePaymentIntent, "")
        );
        assert!(a.starts_with("flextime-payment_intent.create-"), "{a}");
        assert_eq!(a.len(), "flextime-payment_intent.create-".len() + 32);
        assert_ne!(
            a,
            idempotency_key("b-2", Operation::CreatePaymentIntent, "")
        );
        assert_ne!(
            a,
            idempotency_key("b-1", Operation::CreateCheckoutSession, "")
        );
        assert_ne!(
            idempotency_key("b-1", Operation::CapturePaymentIntent, "pi_1"),
            idempotency_key("b-1", Operation::CapturePaymentIntent, "pi_2")
        );
        // Length-prefixed parts: moving a character across a boundary changes the key.
        assert_ne!(
            idempotency_key("ab", Operation::CapturePaymentIntent, "c"),
            idempotency_key("a", Operation::CapturePaymentIntent, "bc")
        );
    }

    #[test]
    fn requests_are_validated_before_sending() {
        let eur = Money::new(2500, "eur").unwrap();
        let ok = DepositCheckout::new("b-1", eur.clone(), "https://x.test/ok", "https://x.test/no");
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.success_url = "javascript:alert(1)".into();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("success_url")
        );
        let mut bad = ok.clone();
        bad.booking_id = " ".into();
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("booking_id")
        );
        let mut bad = ok.clone();
        bad.metadata.insert("a[b]".into(), "x".into());
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("metadata key")
        );
        let mut bad = ok;
        bad.customer = Some("cus_1/../../v1/charges".into());
        assert!(bad.validate().unwrap_err().to_string().contains("customer"));
        let mut pi = NewPaymentIntent::new("b-1", eur);
        pi.receipt_email = Some("not-an-email".into());
        assert!(
            pi.validate()
                .unwrap_err()
                .to_string()
                .contains("receipt_email")
        );
        let refund = NewRefund {
            booking_id: "b-1".into(),
            payment_intent: "pi_1".into(),
            amount: Some(0),
            reason: None,
            metadata: BTreeMap::new(),
        };
        assert!(
            refund
                .validate()
                .unwrap_err()
                .to_string()
                .contains("amount")
        );
    }
}
