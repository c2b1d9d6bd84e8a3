//! Unit tests of the helpers; the rules as a whole are tested by the corpus (`corpus.rs`).

use super::helpers::*;
use super::*;

#[test]
fn domains_as_istio_reads_them() {
    assert_eq!(wildcard_domain("edition.cnn.com"), Ok(()));
    assert_eq!(wildcard_domain("*.cnn.com"), Ok(()));
    assert_eq!(wildcard_domain("*"), Ok(()));
    assert_eq!(
        wildcard_domain("foo.bar_baz.com"),
        Err(r#"domain name "bar_baz.com" invalid (label "bar_baz" invalid)"#.into())
    );
    assert_eq!(
        wildcard_domain("10.0.0.1"),
        Err(r#"domain name "0.0.1" invalid (top level domain "1" cannot be all-numeric)"#.into())
    );
    assert_eq!(
        wildcard_domain(""),
        Err("empty domain name not allowed".into())
    );
    assert_eq!(
        fqdn("*.cnn.com"),
        Err(r#"domain name "*.cnn.com" invalid (label "*" invalid)"#.into())
    );
    assert_eq!(fqdn("istio.io."), Ok(()));
    assert!(fqdn("a.+5").is_err(), "Atoi takes a sign: numeric");
}

#[test]
fn addresses_as_go_parses_them() {
    for ok in [
        "10.0.0.1",
        "::1",
        "fe80::1%eth0",
        "::ffff:1.2.3.4",
        "2001:db8::",
    ] {
        assert!(is_ip(ok), "{ok}");
    }
    for bad in [
        "010.0.0.1",
        "10.0.0.256",
        "1.2.3",
        "fe80::1%",
        "1.2.3.4%eth0",
        "::ffff:01.2.3.4",
        "x",
    ] {
        assert!(!is_ip(bad), "{bad}");
    }
    assert_eq!(ip_subnet("10.0.0.1/8"), Ok(()));
    assert_eq!(
        ip_subnet("10.0.0.0/33"),
        Err("10.0.0.0/33 is not a valid CIDR block".into())
    );
    assert_eq!(
        ip_subnet("10.0.0.0/08"),
        Err("10.0.0.0/08 is not a valid CIDR block".into())
    );
    assert_eq!(ip_subnet("a/b/c"), Err("a/b/c is not a valid IP".into()));
    assert_eq!(ip_subnet("2001:db8::/64"), Ok(()));
}

#[test]
fn ports_names_durations() {
    assert_eq!(
        port(0),
        Err("port number 0 must be in the range 1..65535".into())
    );
    assert_eq!(port(65535), Ok(()));
    assert_eq!(port_name("HTTP"), Ok(()));
    assert_eq!(port_name(""), Err("invalid port name: ".into()));
    assert_eq!(
        subset_name("v1.0"),
        Err("subset name is invalid: v1.0".into())
    );
    let d = |s: &str| duration(crate::istio::api::Duration::parse(s).unwrap());
    assert_eq!(d("1ms"), Ok(()));
    assert_eq!(d("0s"), Err("duration must be greater than 1ms".into()));
    assert_eq!(d("-1s"), Err("duration must be greater than 1ms".into()));
    assert_eq!(
        d("1500us"),
        Err("only durations to ms precision are supported".into())
    );
}

#[test]
fn headers_as_istio_reads_them() {
    assert_eq!(
        match_header_name("x-a,b"),
        Ok(()),
        "Istio's class has the range +-."
    );
    assert_eq!(match_header_name("@request.auth.claims.group"), Ok(()));
    assert_eq!(match_header_name(":authority"), Ok(()));
    assert_eq!(
        match_header_name("x foo"),
        Err("header name x foo is not a valid header name".into())
    );
    assert_eq!(header_value("100%%"), Ok(()));
    assert_eq!(header_value("prefix %HOSTNAME% suffix"), Ok(()));
    assert_eq!(
        header_value("100%"),
        Err("header value configuration: invalid header configuration. Un-escaped %".into())
    );
    assert_eq!(
        header_value("abc%123"),
        Err("header value configuration: invalid header configuration. Un-terminated variable expression 'abc%123'".into())
    );
    assert_eq!(header_value("%REQ([\"a\", \"b\"])%"), Ok(()));
    assert!(
        header_value("a\nb")
            .unwrap_err()
            .starts_with("header value configuration a")
    );
}

#[test]
fn go_formats_values_as_go_does() {
    assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
    assert_eq!(go_float(150.0), "150");
    assert_eq!(go_float(0.5), "0.5");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(100000.0), "100000");
    assert_eq!(go_float(5000011.0), "5.000011e+06");
    assert_eq!(go_float(-150.5), "-150.5");
    assert_eq!(go_fixed(150.0), "150.000000");
}

#[test]
fn errors_print_as_go_multierror_prints_them() {
    let finding = |message: &str, listed| Finding {
        path: FieldPath::default(),
        message: message.into(),
        listed,
    };
    assert_eq!(render(&[]), None);
    assert_eq!(render(&[finding("a", false)]), Some("a".into()));
    assert_eq!(
        render(&[finding("a", true)]),
        Some("1 error occurred:\n\t* a\n\n".into())
    );
    assert_eq!(
        render(&[finding("a", false), finding("b", false)]),
        Some("2 errors occurred:\n\t* a\n\t* b\n\n".into())
    );
}
