//! The SSRF guard's address table: every refused range, IPv4 and IPv6, with
//! the IPv4-mapped, IPv4-compatible, NAT64 and 6to4 forms, and public
//! addresses that must pass.

use std::net::IpAddr;

use flextime_core::ErrorKind;
use flextime_webhooks::dispatch::SsrfGuard;

/// `(address, refused?)`.
const TABLE: &[(&str, bool)] = &[
    // IPv4: refused ranges, first and last address where it matters.
    ("0.0.0.0", true),
    ("0.255.255.255", true),
    ("10.0.0.1", true),
    ("10.255.255.255", true),
    ("100.64.0.1", true),
    ("100.127.255.254", true),
    ("127.0.0.1", true),
    ("127.255.255.254", true),
    ("169.254.169.254", true),
    ("172.16.0.1", true),
    ("172.31.255.255", true),
    ("192.0.0.8", true),
    ("192.0.2.1", true),
    ("192.88.99.1", true),
    ("192.168.1.1", true),
    ("198.18.0.1", true),
    ("198.19.255.255", true),
    ("198.51.100.7", true),
    ("203.0.113.9", true),
    ("224.0.0.1", true),
    ("239.255.255.250", true),
    ("240.0.0.1", true),
    ("255.255.255.255", true),
    // IPv4: public neighbours of those ranges.
    ("1.1.1.1", false),
    ("8.8.8.8", false),
    ("9.255.255.255", false),
    ("11.0.0.1", false),
    ("100.63.255.255", false),
    ("100.128.0.1", false),
    ("172.15.255.255", false),
    ("172.32.0.1", false),
    ("192.167.255.255", false),
    ("198.17.255.255", false),
    ("198.20.0.1", false),
    ("223.255.255.254", false),
    ("93.184.216.34", false),
    // IPv6: refused ranges.
    ("::", true),
    ("::1", true),
    ("100::1", true),
    ("2001:db8::1", true),
    ("2001:db8:ffff::1", true),
    ("2001::1", true),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
    ("fc00::1", true),
    ("fd12:3456:789a::1", true),
    ("fe80::1", true),
    ("febf::1", true),
    ("fec0::1", true),
    ("ff02::1", true),
    ("ff0e::1", true),
    ("3fff::1", true),
    ("5f00::1", true),
    ("4000::1", true),
    ("::2:0:0:1", true),
    // IPv4-mapped (::ffff:0:0/96): the embedded address decides.
    ("::ffff:127.0.0.1", true),
    ("::ffff:10.1.2.3", true),
    ("::ffff:169.254.169.254", true),
    ("::ffff:192.168.0.1", true),
    ("::ffff:8.8.8.8", false),
    // IPv4-compatible (deprecated ::a.b.c.d).
    ("::127.0.0.1", true),
    ("::10.0.0.1", true),
    // NAT64 (64:ff9b::/96) of private and public addresses.
    ("64:ff9b::7f00:1", true),
    ("64:ff9b::a00:1", true),
    ("64:ff9b::808:808", false),
    ("64:ff9b:1::a00:1", true),
    // 6to4 (2002::/16): refused whatever it embeds.
    ("2002:7f00:1::1", true),
    ("2002:c0a8:101::1", true),
    ("2002:808:808::1", true),
    // IPv6: public.
    ("2606:4700:4700::1111", false),
    ("2001:4860:4860::8888", false),
    ("2a00:1450:4001:82a::200e", false),
];

#[test]
fn every_range_is_refused_and_public_addresses_pass() {
    let guard = SsrfGuard::default();
    let mut wrong = Vec::new();
    for (addr, refused) in TABLE {
        let ip: IpAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
        match (guard.check_ip(ip), refused) {
            (Ok(()), false) => {}
            (Err(e), true) => {
                assert_eq!(e.kind(), ErrorKind::Forbidden);
                assert!(
                    e.to_string().contains("destination address")
                        && e.to_string().contains("is not allowed"),
                    "{e}"
                );
            }
            (r, _) => wrong.push(format!("{addr}: expected refused={refused}, got {r:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn allow_listed_subnets_pass_in_every_form() {
    let guard = SsrfGuard::default()
        .allow("127.0.0.0/8".parse().unwrap())
        .allow("fd00::/8".parse().unwrap());
    for ok in [
        "127.0.0.1",
        "127.1.2.3",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
        "fd12::1",
    ] {
        assert!(guard.check_ip(ok.parse().unwrap()).is_ok(), "{ok}");
    }
    for refused in ["10.0.0.1", "::1", "fc00::1", "::ffff:10.0.0.1"] {
        assert!(
            guard.check_ip(refused.parse().unwrap()).is_err(),
            "{refused}"
        );
    }
}

#[test]
fn urls_are_checked_for_scheme_and_literal_hosts() {
    let guard = SsrfGuard::default();
    let check = |u: &str| guard.check_url(&u.parse().unwrap());
    assert!(check("https://example.com/hooks").is_ok());
    assert!(check("http://example.com/hooks").is_ok());
    assert_eq!(
        check("http://[::ffff:7f00:1]/").unwrap_err().kind(),
        ErrorKind::Forbidden
    );
    assert_eq!(
        check("http://10.0.0.1/").unwrap_err().kind(),
        ErrorKind::Forbidden
    );
    assert_eq!(
        check("ftp://example.com/").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let strict = SsrfGuard::default().https_only(true);
    assert_eq!(
        strict
            .check_url(&"http://example.com/".parse().unwrap())
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden
    );
}
