use super::*;
use alloc::vec;
use argon2::password_hash::PasswordHasher;
use proptest::prelude::*;

const CHEAP: Cost = Cost { memory_kib: 64, iterations: 1, parallelism: 1 };

fn memory(cost: Cost) -> Vec<Block> {
    vec![Block::default(); Verifier::blocks(cost)]
}

#[test]
fn make_parse_verify_round_trip() {
    let mut mem = memory(CHEAP);
    let v = Verifier::make(b"correct horse", b"0123456789abcdef", CHEAP, &mut mem).unwrap();
    let phc = v.to_phc();
    assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
    let back = Verifier::parse(&phc).unwrap();
    assert_eq!(back, v);
    assert!(back.verify(b"correct horse", &mut mem).unwrap());
    assert!(!back.verify(b"correct horsf", &mut mem).unwrap());
    assert!(!back.verify(b"", &mut mem).unwrap());
}

#[test]
fn reads_what_the_argon2_crate_writes() {
    let params = Params::new(64, 1, 1, None).unwrap();
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::encode_b64(b"saltsaltsalt").unwrap();
    let phc = hasher.hash_password(b"s3cret-pass", &salt).unwrap().to_string();
    let v = Verifier::parse(&phc).unwrap();
    let mut mem = memory(v.cost());
    assert!(v.verify(b"s3cret-pass", &mut mem).unwrap());
    assert!(!v.verify(b"s3cret-pasS", &mut mem).unwrap());
    assert_eq!(v.to_phc(), phc);
}

#[test]
fn named_errors_for_bad_verifiers() {
    let good = {
        let mut mem = memory(CHEAP);
        Verifier::make(b"pw", b"0123456789abcdef", CHEAP, &mut mem).unwrap().to_phc()
    };
    assert!(matches!(Verifier::parse("hunter2"), Err(VerifierError::NotPhc(_))));
    assert!(matches!(
        Verifier::parse(&good.replace("argon2id", "argon2i")),
        Err(VerifierError::Algorithm(_))
    ));
    assert_eq!(Verifier::parse(&good.replace("v=19", "v=16")), Err(VerifierError::Version));
    let costly = good.replace("m=64", "m=4000000");
    assert!(matches!(Verifier::parse(&costly), Err(VerifierError::TooCostly(_))));
    let lanes = good.replace("p=1", "p=4");
    assert!(matches!(Verifier::parse(&lanes), Err(VerifierError::TooCostly(_))));
    let no_hash: String = good.rsplit_once('$').unwrap().0.into();
    assert_eq!(Verifier::parse(&no_hash), Err(VerifierError::Hash));
    let msg = Verifier::parse(&costly).unwrap_err().to_string();
    assert!(msg.contains("over the limit"), "{msg}");
}

#[test]
fn too_little_memory_is_an_error_not_a_panic() {
    let mut mem = vec![Block::default(); 8];
    assert_eq!(
        Verifier::make(b"pw", b"0123456789abcdef", CHEAP, &mut mem),
        Err(VerifierError::Memory { needed: 64, given: 8 })
    );
    let mut mem = memory(CHEAP);
    assert_eq!(Verifier::make(b"pw", b"short", CHEAP, &mut mem), Err(VerifierError::Salt));
}

#[test]
fn account_names() {
    assert_eq!(check_account_name("operator"), Ok(()));
    assert_eq!(check_account_name("_svc-1"), Ok(()));
    assert_eq!(check_account_name(""), Err(NameError::Empty));
    assert_eq!(check_account_name("Root"), Err(NameError::BadChar('R')));
    assert_eq!(check_account_name("1abc"), Err(NameError::BadChar('1')));
    assert_eq!(check_account_name("a b"), Err(NameError::BadChar(' ')));
    assert_eq!(check_account_name("anonymous"), Err(NameError::Reserved));
    assert_eq!(check_account_name(&"a".repeat(33)), Err(NameError::TooLong(33)));
}

#[test]
fn new_passwords() {
    assert_eq!(check_new_password("long enough"), Ok(()));
    assert_eq!(check_new_password("short"), Err(PasswordError::TooShort));
    assert_eq!(check_new_password(&"x".repeat(129)), Err(PasswordError::TooLong));
    assert_eq!(check_new_password("tab\there!"), Err(PasswordError::ControlChar));
}

#[test]
fn throttle_doubles_and_resets() {
    let mut t = Throttle::new();
    assert_eq!(t.not_before("op"), 0);
    assert_eq!(t.fail("op", 100), FIRST_DELAY_NS);
    assert_eq!(t.not_before("op"), 100 + FIRST_DELAY_NS);
    assert_eq!(t.fail("op", 200), 2 * FIRST_DELAY_NS);
    assert_eq!(t.fail("op", 300), 4 * FIRST_DELAY_NS);
    assert_eq!(t.failures("op"), 3);
    assert_eq!(t.not_before("other"), 0);
    t.succeed("op");
    assert_eq!(t.failures("op"), 0);
    for _ in 0..100 {
        t.fail("op", 0);
    }
    assert_eq!(t.not_before("op"), MAX_DELAY_NS);
}

#[test]
fn throttle_is_bounded() {
    let mut t = Throttle::new();
    for i in 0..(MAX_TRACKED as u64 + 50) {
        t.fail(&alloc::format!("user{i}"), i);
    }
    assert_eq!(t.names.len(), MAX_TRACKED);
    assert_eq!(t.failures("user0"), 0);
    assert_eq!(t.failures(&alloc::format!("user{}", MAX_TRACKED as u64 + 49)), 1);
}

proptest! {
    #[test]
    fn parse_never_panics(s in ".{0,200}") {
        let _ = Verifier::parse(&s);
    }

    #[test]
    fn parse_of_mutated_verifier_never_panics(pos in 0usize..120, c in proptest::char::any()) {
        let mut mem = memory(CHEAP);
        let phc = Verifier::make(b"pw", b"0123456789abcdef", CHEAP, &mut mem).unwrap().to_phc();
        let mut chars: Vec<char> = phc.chars().collect();
        let at = pos % chars.len();
        chars[at] = c;
        let s: String = chars.into_iter().collect();
        let _ = Verifier::parse(&s);
    }
}
