//! Create a Stripe Checkout Session that takes a booking's deposit.
//!
//! ```sh
//! stripe_checkout --base-url http://127.0.0.1:4010 --secret-key sk_test_... \
//!     --booking-id b-42 --amount 2500 --currency eur \
//!     --success-url https://example.com/paid --cancel-url https://example.com/booking \
//!     [--customer-email ada@example.com] [--product-name "Deposit"] [--manual-capture]
//! ```
//!
//! The amount is in the currency's minor units (2500 EUR cents = 25.00 EUR).
//! Everything is checked before anything is sent. The request carries an
//! `Idempotency-Key` derived from the booking id, so running the command
//! again for the same booking returns the same session from Stripe instead
//! of creating another. Prints JSON lines: the request
//! (`{"event":"request",...,"idempotency_key":...}`) then the session
//! (`{"event":"checkout_session","id":...,"url":...}`). Exits 2 on invalid
//! input, 1 on any other failure (the error on stderr as a JSON line).
//! `--base-url` defaults to Stripe's API; point it at Prism to run with no
//! account.

use clap::Parser;
use flextime_connectors::payments::stripe::{API_VERSION, DEFAULT_BASE_URL, Stripe};
use flextime_connectors::payments::{
    CaptureMethod, DepositCheckout, Money, Operation, PaymentGateway, idempotency_key,
};
use flextime_core::ErrorKind;
use serde_json::json;

#[derive(Parser)]
#[command(about = "Create a Stripe Checkout Session for a booking deposit")]
struct Args {
    /// Stripe's API base URL (a proxy, or Prism).
    #[arg(long, default_value = DEFAULT_BASE_URL)]
    base_url: String,
    /// The secret key (sk_test_... / sk_live_... / rk_...).
    #[arg(long)]
    secret_key: String,
    /// The booking the deposit is for.
    #[arg(long)]
    booking_id: String,
    /// The deposit in minor units (cents).
    #[arg(long, allow_negative_numbers = true)]
    amount: i64,
    /// ISO 4217 currency code.
    #[arg(long)]
    currency: String,
    /// Where the customer lands after paying.
    #[arg(long)]
    success_url: String,
    /// Where the customer lands after giving up.
    #[arg(long)]
    cancel_url: String,
    /// Prefill the customer's email.
    #[arg(long)]
    customer_email: Option<String>,
    /// The line item's name (default `Deposit for booking <id>`).
    #[arg(long)]
    product_name: Option<String>,
    /// Authorise now, capture later (a hold).
    #[arg(long)]
    manual_capture: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "{}",
                json!({"event": "error", "kind": err.kind().as_str(), "message": err.to_string()})
            );
            if err.kind() == ErrorKind::InvalidInput {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}

async fn run(args: &Args) -> flextime_core::Result<()> {
    let amount = Money::new(args.amount, &args.currency)?;
    let mut checkout = DepositCheckout::new(
        &args.booking_id,
        amount.clone(),
        &args.success_url,
        &args.cancel_url,
    );
    checkout.customer_email.clone_from(&args.customer_email);
    if let Some(name) = &args.product_name {
        checkout.product_name.clone_from(name);
    }
    if args.manual_capture {
        checkout.capture_method = CaptureMethod::Manual;
    }
    checkout.validate()?;
    let stripe = Stripe::builder(&args.secret_key)
        .base_url(&args.base_url)
        .build()?;
    println!(
        "{}",
        json!({
            "event": "request",
            "operation": Operation::CreateCheckoutSession.as_str(),
            "booking_id": args.booking_id,
            "amount": amount.amount(),
            "currency": amount.currency().as_str(),
            "display": amount.to_string(),
            "stripe_version": API_VERSION,
            "idempotency_key": idempotency_key(&args.booking_id, Operation::CreateCheckoutSession, ""),
        })
    );
    let session = stripe.create_deposit_checkout(&checkout).await?;
    println!(
        "{}",
        json!({
            "event": "checkout_session",
            "id": session.id,
            "url": session.url,
            "status": session.status,
            "payment_status": session.payment_status,
            "booking_id": args.booking_id,
        })
    );
    Ok(())
}
