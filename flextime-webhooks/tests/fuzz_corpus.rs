//! Replays the kept fuzz corpus (fuzz/corpus/verify_headers) through the
//! fuzz target's checks, so every input the fuzzer found interesting stays a
//! regression test without a fuzzing toolchain.

#[path = "support/fuzz_check.rs"]
mod fuzz_check;

#[test]
fn corpus_replays_without_panics_or_forgeries() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/verify_headers");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
        let data = std::fs::read(entry.expect("entry").path()).expect("readable");
        fuzz_check::check(&data);
        count += 1;
    }
    assert!(
        count >= 10,
        "only {count} corpus files in {}",
        dir.display()
    );
}
