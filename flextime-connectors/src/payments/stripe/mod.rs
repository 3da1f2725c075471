//! Stripe as a [`PaymentGateway`].
//!
//! - `Authorization: Bearer <secret key>` and a pinned `Stripe-Version`
//!   ([`API_VERSION`], the version of the OpenAPI document the requests are
//!   checked against), so a change of the account's default version cannot
//!   change what this code reads.
//! - Bodies are form-encoded with nested parameters in Stripe's bracket
//!   notation ([`form`]): `metadata[booking_id]=b-1`,
//!   `line_items[0][price_data][unit_amount]=2500`,
//!   `payment_method_types[0]=card`.
//! - Every POST carries an `Idempotency-Key` derived from the booking id and
//!   the operation ([`idempotency_key`]), so the HTTP client may retry it on
//!   a 5xx or a timeout, and a retry after a crash reuses the key: Stripe
//!   answers with the first result instead of charging twice.
//! - Stripe's error object (`{"error": {"type", "code", "message", "param"}}`)
//!   is quoted in the typed error (`... returned 402 Payment Required: Your
//!   card was declined. (type card_error, code card_declined, param ...)`).
//! - Webhook events are parsed into [`StripeEvent`] ([`events`]).
//!
//! The base URL defaults to `https://api.stripe.com`; point it at a proxy or
//! a test peer with [`StripeBuilder::base_url`].

pub mod events;
pub mod form;

use std::fmt;

use flextime_core::{Error, Result};
use serde::de::DeserializeOwned;

pub use events::{EventObject, StripeEvent};
pub use form::Param;

use super::{
    CancelPayment, CapturePayment, CheckoutSession, ConfirmPayment, Customer, DepositCheckout,
    NewCustomer, NewPaymentIntent, NewRefund, Operation, PaymentGateway, PaymentIntent, Refund,
    idempotency_key, validate_amount, validate_booking_id, validate_id, validate_url,
};
use crate::http::{Auth, HttpClient, HttpClientBuilder};
use crate::{Capability, Connector};

/// The connector's name.
pub const NAME: &str = "stripe";
/// Stripe's API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// The pinned API version (that of the 2023-09-12 OpenAPI document).
pub const API_VERSION: &str = "2023-08-16";

/// Builds a [`Stripe`] gateway.
#[must_use]
pub struct StripeBuilder {
    secret_key: String,
    base_url: String,
    api_version: String,
    http: HttpClientBuilder,
}

impl StripeBuilder {
    /// Overrides the API base URL (tests, proxies, Prism).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Pins another `Stripe-Version` (default [`API_VERSION`]).
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// Changes the underlying HTTP client (retries, timeouts, observers ...).
    pub fn http(mut self, f: impl FnOnce(HttpClientBuilder) -> HttpClientBuilder) -> Self {
        self.http = f(self.http);
        self
    }

    /// Builds the gateway. The secret key must be a secret (`sk_...`) or
    /// restricted (`rk_...`) key.
    pub fn build(self) -> Result<Stripe> {
        let key_ok = ["sk_", "rk_"]
            .iter()
            .any(|p| self.secret_key.starts_with(p) && self.secret_key.len() > p.len());
        if !key_ok {
            return Err(Error::invalid_input(
                "stripe: the secret key must start with sk_ or rk_",
            ));
        }
        let http = self
            .http
            .base_url(&self.base_url)?
            .auth(Auth::bearer(self.secret_key))
            .default_header("Stripe-Version", &self.api_version)?
            .build()?;
        Ok(Stripe { http })
    }
}

/// The Stripe payments connector.
#[derive(Clone)]
pub struct Stripe {
    http: HttpClient,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe").field("http", &self.http).finish()
    }
}

impl Stripe {
    /// A builder authenticating with `secret_key`.
    pub fn builder(secret_key: impl Into<String>) -> StripeBuilder {
        StripeBuilder {
            secret_key: secret_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_version: API_VERSION.to_owned(),
            http: HttpClient::builder(NAME),
        }
    }

    /// POSTs `params` to `path` with the idempotency key of `operation`.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        booking_id: &str,
        operation: Operation,
        target: &str,
        params: &Param,
    ) -> Result<T> {
        let pairs = form::encode(params)?;
        let key = idempotency_key(booking_id, operation, target);
        self.http
            .post(path)
            .header("Idempotency-Key", &key)
            .form(&pairs)
            .send_json()
            .await
    }

    /// The parameters of `POST /v1/customers`.
    pub fn customer_params(customer: &NewCustomer) -> Result<Param> {
        customer.validate()?;
        let mut p = Param::map();
        p.push_opt("email", customer.email.as_ref());
        p.push_opt("name", customer.name.as_ref());
        p.push_opt("phone", customer.phone.as_ref());
        let mut metadata = Param::strings(&customer.metadata);
        metadata.push("flextime_ref", &customer.reference);
        p.push("metadata", metadata);
        Ok(p)
    }

    /// The parameters of `POST /v1/payment_intents`.
    pub fn payment_intent_params(intent: &NewPaymentIntent) -> Result<Param> {
        intent.validate()?;
        let mut p = Param::map()
            .with("amount", intent.amount.amount())
            .with("currency", intent.amount.currency().as_str());
        p.push_opt("customer", intent.customer.as_ref());
        p.push_opt("description", intent.description.as_ref());
        p.push("capture_method", intent.capture_method.as_str());
        if !intent.payment_method_types.is_empty() {
            p.push("payment_method_types", intent.payment_method_types.clone());
        }
        p.push_opt("payment_method", intent.payment_method.as_ref());
        p.push_opt("receipt_email", intent.receipt_email.as_ref());
        p.push(
            "metadata",
            booking_metadata(&intent.booking_id, &intent.metadata),
        );
        Ok(p)
    }

    /// The parameters of `POST /v1/checkout/sessions` for a deposit: mode
    /// `payment`, one line item with `price_data`, the URLs, and the booking
    /// id in `client_reference_id`, the session's metadata and its
    /// PaymentIntent's metadata.
    pub fn checkout_params(checkout: &DepositCheckout) -> Result<Param> {
        checkout.validate()?;
        let item = Param::map()
            .with(
                "price_data",
                Param::map()
                    .with("currency", checkout.amount.currency().as_str())
                    .with("unit_amount", checkout.amount.amount())
                    .with(
                        "product_data",
                        Param::map().with("name", &checkout.product_name),
                    ),
            )
            .with("quantity", 1);
        let metadata = booking_metadata(&checkout.booking_id, &checkout.metadata);
        let mut p = Param::map()
            .with("mode", "payment")
            .with("success_url", &checkout.success_url)
            .with("cancel_url", &checkout.cancel_url)
            .with("client_reference_id", &checkout.booking_id)
            .with("line_items", Param::List(vec![item]));
        if let Some(customer) = &checkout.customer {
            p.push("customer", customer);
        } else {
            p.push_opt("customer_email", checkout.customer_email.as_ref());
        }
        if !checkout.payment_method_types.is_empty() {
            p.push(
                "payment_method_types",
                checkout.payment_method_types.clone(),
            );
        }
        p.push_opt("expires_at", checkout.expires_at);
        p.push("metadata", metadata.clone());
        p.push(
            "payment_intent_data",
            Param::map()
                .with("capture_method", checkout.capture_method.as_str())
                .with("metadata", metadata),
        );
        Ok(p)
    }

    /// The parameters of `POST /v1/refunds`.
    pub fn refund_params(refund: &NewRefund) -> Result<Param> {
        refund.validate()?;
        let mut p = Param::map().with("payment_intent", &refund.payment_intent);
        p.push_opt("amount", refund.amount);
        p.push_opt("reason", refund.reason.map(super::RefundReason::as_str));
        p.push(
            "metadata",
            booking_metadata(&refund.booking_id, &refund.metadata),
        );
        Ok(p)
    }
}

/// `metadata` with `booking_id` added.
fn booking_metadata(
    booking_id: &str,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Param {
    let mut m = Param::strings(metadata.iter().filter(|(k, _)| *k != "booking_id"));
    m.push("booking_id", booking_id);
    m
}

#[async_trait::async_trait]
impl PaymentGateway for Stripe {
    async fn create_customer(&self, customer: &NewCustomer) -> Result<Customer> {
        let params = Self::customer_params(customer)?;
        self.post(
            "v1/customers",
            &customer.reference,
            Operation::CreateCustomer,
            "",
            &params,
        )
        .await
    }

    async fn retrieve_customer(&self, id: &str) -> Result<Customer> {
        validate_id("customer", id)?;
        self.http
            .get(&format!("v1/customers/{id}"))
            .send_json()
            .await
    }

    async fn create_payment_intent(&self, intent: &NewPaymentIntent) -> Result<PaymentIntent> {
        let params = Self::payment_intent_params(intent)?;
        self.post(
            "v1/payment_intents",
            &intent.booking_id,
            Operation::CreatePaymentIntent,
            "",
            &params,
        )
        .await
    }

    async fn confirm_payment_intent(
        &self,
        id: &str,
        confirm: &ConfirmPayment,
    ) -> Result<PaymentIntent> {
        validate_id("payment_intent", id)?;
        validate_booking_id(&confirm.booking_id)?;
        let mut p = Param::map();
        if let Some(pm) = &confirm.payment_method {
            validate_id("payment_method", pm)?;
            p.push("payment_method", pm);
        }
        if let Some(url) = &confirm.return_url {
            validate_url("return_url", url)?;
            p.push("return_url", url);
        }
        self.post(
            &format!("v1/payment_intents/{id}/confirm"),
            &confirm.booking_id,
            Operation::ConfirmPaymentIntent,
            id,
            &p,
        )
        .await
    }

    async fn capture_payment_intent(
        &self,
        id: &str,
        capture: &CapturePayment,
    ) -> Result<PaymentIntent> {
        validate_id("payment_intent", id)?;
        validate_booking_id(&capture.booking_id)?;
        let mut p = Param::map();
        if let Some(amount) = capture.amount_to_capture {
            validate_amount("amount_to_capture", amount)?;
            p.push("amount_to_capture", amount);
        }
        self.post(
            &format!("v1/payment_intents/{id}/capture"),
            &capture.booking_id,
            Operation::CapturePaymentIntent,
            id,
            &p,
        )
        .await
    }

    async fn cancel_payment_intent(
        &self,
        id: &str,
        cancel: &CancelPayment,
    ) -> Result<PaymentIntent> {
        validate_id("payment_intent", id)?;
        validate_booking_id(&cancel.booking_id)?;
        let mut p = Param::map();
        p.push_opt(
            "cancellation_reason",
            cancel.reason.map(super::CancellationReason::as_str),
        );
        self.post(
            &format!("v1/payment_intents/{id}/cancel"),
            &cancel.booking_id,
            Operation::CancelPaymentIntent,
            id,
            &p,
        )
        .await
    }

    async fn create_deposit_checkout(&self, checkout: &DepositCheckout) -> Result<CheckoutSession> {
        let params = Self::checkout_params(checkout)?;
        self.post(
            "v1/checkout/sessions",
            &checkout.booking_id,
            Operation::CreateCheckoutSession,
            "",
            &params,
        )
        .await
    }

    async fn refund(&self, refund: &NewRefund) -> Result<Refund> {
        let params = Self::refund_params(refund)?;
        self.post(
            "v1/refunds",
            &refund.booking_id,
            Operation::CreateRefund,
            &refund.payment_intent,
            &params,
        )
        .await
    }
}

#[async_trait::async_trait]
impl Connector for Stripe {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::Payments]
    }

    /// Reads the balance (`GET /v1/balance`), which any valid key may.
    async fn check(&self) -> Result<()> {
        self.http.get("v1/balance").send().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::{CaptureMethod, Money};

    fn body(p: &Param) -> Vec<(String, String)> {
        form::encode(p).unwrap()
    }

    fn has(pairs: &[(String, String)], k: &str, v: &str) -> bool {
        pairs.iter().any(|(a, b)| a == k && b == v)
    }

    #[test]
    fn a_deposit_checkout_is_encoded_as_stripe_expects() {
        let mut c = DepositCheckout::new(
            "b-42",
            Money::new(2500, "EUR").unwrap(),
            "https://x.test/ok",
            "https://x.test/no",
        );
        c.payment_method_types = vec!["card".into()];
        c.capture_method = CaptureMethod::Manual;
        c.metadata.insert("room".into(), "1".into());
        c.metadata.insert("booking_id".into(), "spoofed".into());
        let pairs = body(&Stripe::checkout_params(&c).unwrap());
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "mode",
                "success_url",
                "cancel_url",
                "client_reference_id",
                "line_items[0][price_data][currency]",
                "line_items[0][price_data][unit_amount]",
                "line_items[0][price_data][product_data][name]",
                "line_items[0][quantity]",
                "payment_method_types[0]",
                "metadata[room]",
                "metadata[booking_id]",
                "payment_intent_data[capture_method]",
                "payment_intent_data[metadata][room]",
                "payment_intent_data[metadata][booking_id]",
            ]
        );
        assert!(has(&pairs, "mode", "payment"));
        assert!(has(
            &pairs,
            "line_items[0][price_data][unit_amount]",
            "2500"
        ));
        assert!(has(&pairs, "line_items[0][price_data][currency]", "eur"));
        assert!(has(
            &pairs,
            "line_items[0][price_data][product_data][name]",
            "Deposit for booking b-42"
        ));
        assert!(has(&pairs, "metadata[booking_id]", "b-42"));
        assert!(has(&pairs, "payment_intent_data[capture_method]", "manual"));
    }

    #[test]
    fn a_payment_intent_is_encoded_with_integer_amount_and_metadata() {
        let mut pi = NewPaymentIntent::new("b-7", Money::new(1099, "usd").unwrap());
        pi.payment_method_types = vec!["card".into()];
        pi.customer = Some("cus_1".into());
        let s = form::to_body(&body(&Stripe::payment_intent_params(&pi).unwrap()));
        assert_eq!(
            s,
            "amount=1099&currency=usd&customer=cus_1&capture_method=automatic\
             &payment_method_types%5B0%5D=card&metadata%5Bbooking_id%5D=b-7"
        );
    }

    #[test]
    fn secret_keys_are_checked_and_never_printed() {
        let err = Stripe::builder("pk_test_1").build().unwrap_err();
        assert!(err.to_string().contains("sk_"), "{err}");
        let s = Stripe::builder("sk_test_s3cret").build().unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
