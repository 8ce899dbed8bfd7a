//! Unit tests of the packed format: validation rules and field splitting.

use super::*;

fn join(parts: &[&str]) -> String {
    parts.join("\u{1}")
}

fn impression() -> Vec<&'static str> {
    vec![
        "",
        "\"1\"",
        "\"2\"",
        "\"3\"",
        "",
        "",
        "false",
        "", // context
        "\"impression\"",
        "\"u-1\"",
        "1700000000000",
        "\"vis\"",
        "", // common
        "\"l\"",
        "\"e\"",
        "1",
        "\"7\"",
        "\"v\"",
        "\"rk\"",
        "\"fk\"",
        "\"ab\"",
        "true",
        "",
    ]
}

#[test]
fn parses_a_valid_impression() {
    let s = join(&impression());
    let p = parse(&s).unwrap();
    assert_eq!(p.kind, Kind::Impression);
    assert_eq!(p.context, join(&impression()[..8]));
    assert_eq!(p.data, join(&impression()[9..]));
}

#[test]
fn find_agrees_with_a_byte_search_at_every_position() {
    for len in 0..40 {
        for at in 0..=len {
            let mut b = vec![b'x'; len];
            b.iter_mut().skip(at + 1).step_by(3).for_each(|c| *c = 1);
            if at < len {
                b[at] = 1;
            }
            // Bytes just above and below the separator must not match.
            b.iter_mut().take(at).step_by(2).for_each(|c| *c = 0);
            b.iter_mut()
                .skip(1)
                .take(at.saturating_sub(1))
                .step_by(2)
                .for_each(|c| *c = 2);
            let expected = b.iter().position(|&c| c == 1);
            assert_eq!(find(&b, 1), expected, "len {len}, at {at}: {b:?}");
        }
    }
    assert_eq!(find("aé\u{1}".as_bytes(), 1), Some(3));
}

#[test]
fn a_known_context_is_not_checked_again_and_any_other_is() {
    let mut parts = impression();
    parts[1] = "42"; // accountId must be a string
    let s = join(&parts);
    let context = join(&parts[..8]);
    assert!(parse(&s).is_err());
    assert!(parse_after(&s, Some("\"other\"")).is_err());
    assert_eq!(parse_after(&s, Some(&context)).unwrap().context, context);
}

/// What a parse gives apart from whether its context was the known one.
type Parts<'a> = Result<(&'a str, Kind, &'a str, [&'a str; data::MAX]), String>;

fn parts(r: Result<Parsed<'_>, String>) -> Parts<'_> {
    r.map(|p| (p.context, p.kind, p.data, p.fields))
}

#[test]
fn a_known_context_gives_what_a_full_parse_gives() {
    // With a known context only the rest is split: every result and error must be the
    // same as splitting the whole event.
    let base = impression();
    let context = join(&base[..8]);
    let mut cases = vec![join(&base)];
    let mut extra = base.clone();
    extra.push("\"more\"");
    cases.push(join(&extra));
    let mut short = base.clone();
    short.pop();
    cases.push(join(&short));
    let mut bad_type = base.clone();
    bad_type[8] = "\"click\"";
    cases.push(join(&bad_type));
    cases.push(join(&base[..8]));
    cases.push(format!("{}\u{1}", join(&base[..8])));
    let mut bad_user = base.clone();
    bad_user[11] = "42";
    cases.push(join(&bad_user));
    for s in &cases {
        let full = parse(s).map_err(|e| e.to_string());
        let known = parse_after(s, Some(&context)).map_err(|e| e.to_string());
        assert!(known.as_ref().map_or(true, |p| p.known), "{s:?}");
        assert!(full.as_ref().map_or(true, |p| !p.known), "{s:?}");
        assert_eq!(parts(known), parts(full), "{s:?}");
    }
}

#[test]
fn names_the_field_that_breaks_a_rule() {
    let mut parts = impression();
    parts[11] = "42";
    let err = parse(&join(&parts)).unwrap_err();
    assert_eq!(err.to_string(), "user.id must be a string, got 42");

    let mut parts = impression();
    parts[10] = "null";
    let err = parse(&join(&parts)).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("timestamp must be a finite number"));

    let mut parts = impression();
    parts[1] = "";
    let err = parse(&join(&parts)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "context.accountId must be a string, got undefined"
    );
}

#[test]
fn rejects_unknown_types_and_wrong_field_counts() {
    let mut parts = impression();
    parts[8] = "\"click\"";
    let err = parse(&join(&parts)).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("type must be 'impression' or 'conversion'"));
    let mut parts = impression();
    parts.pop();
    assert!(parse(&join(&parts)).is_err());
    assert!(parse("").is_err());
    assert!(parse("\u{1}\u{1}").is_err());
}

#[test]
fn validates_attributes() {
    let mut parts = impression();
    parts[12] = "\"1\"\u{2}\"k\"\u{2}null";
    let err = parse(&join(&parts)).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("user.attributes[0].value must be"));
    parts[12] = "\"1\"\u{2}\"k\"";
    assert!(parse(&join(&parts)).is_err());
    parts[12] = "\"1\"\u{2}\"k\"\u{2}3.5\u{2}\"2\"\u{2}\"b\"\u{2}true";
    assert!(parse(&join(&parts)).is_ok());
}

#[test]
fn truthiness_follows_javascript() {
    for falsy in ["", "null", "false", "0", "\"\""] {
        assert!(!Token::is_truthy(falsy), "{falsy}");
    }
    for truthy in ["\"0\"", "1", "true", "{}"] {
        assert!(Token::is_truthy(truthy), "{truthy}");
    }
}

#[test]
fn truncates_long_values_in_messages_on_char_boundaries() {
    let long = format!("\"{}\"", "é".repeat(100));
    let mut parts = impression();
    parts[8] = &long;
    let msg = parse(&join(&parts)).unwrap_err().to_string();
    assert!(msg.ends_with('…'));
}

#[test]
fn same_bytes_is_slice_equality() {
    let texts: [&[u8]; 7] = [
        b"",
        b"a",
        b"abcdefgh",
        b"abcdefghi",
        b"abcdefgx",
        b"abcdefghijklmnopq",
        b"abcdefghijklmnopr",
    ];
    for a in texts {
        for b in texts {
            assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
        }
    }
}

#[test]
fn fields_split_like_str_split_one_at_a_time_or_three_at_a_time() {
    for s in [
        "",
        "a",
        "\u{2}",
        "a\u{2}b",
        "a\u{2}b\u{2}c",
        "a\u{2}\u{2}c\u{2}d",
        "\"é\"\u{2}k\u{2}1\u{2}x\u{2}y\u{2}z\u{2}",
        "0123456789abcdef\u{2}0123456789\u{2}\u{2}",
    ] {
        let expected: Vec<&str> = s.split('\u{2}').collect();
        assert_eq!(Fields::new(s, SUB).collect::<Vec<_>>(), expected, "{s:?}");
        let mut f = Fields::new(s, SUB);
        let mut threes = Vec::new();
        while let Some(three) = f.next_three() {
            threes.push(three);
        }
        let whole: Vec<[&str; 3]> = expected
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        assert_eq!(threes, whole, "{s:?}");
    }
    let mut out = [""; 4];
    assert_eq!(split("a\u{1}\u{1}b\u{1}c\u{1}d", &mut out), 5);
    assert_eq!(out, ["a", "", "b", "c"]);
}
