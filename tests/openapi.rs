//! The committed OpenAPI documents (`openapi/*.json`) are exactly what the code describes:
//! regenerate them with `cargo run -- openapi` after changing an API.
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn committed_openapi_documents_match_the_code() {
    let out =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("openapi-{}", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_brigade"))
        .args(["openapi", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi");
    for service in ["identity", "orders", "kitchen", "delivery"] {
        let file = format!("{service}.json");
        let generated = std::fs::read_to_string(out.join(&file)).unwrap();
        let on_disk = std::fs::read_to_string(committed.join(&file))
            .unwrap_or_else(|_| panic!("openapi/{file} is missing: run `cargo run -- openapi`"));
        assert!(
            generated == on_disk,
            "openapi/{file} differs from the code: run `cargo run -- openapi` and commit the result"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}
