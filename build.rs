//! Embeds every migration file: `migrations/{sqlite,postgres}/NNNN_description.sql`
//! become `(version, description, sql)` lists in `$OUT_DIR/migrations.rs`, which
//! `src/adapters/sql.rs` includes.
//!
//! Written by hand instead of `sqlx::migrate!`: that macro needs sqlx's `macros` feature,
//! which builds both database drivers (SQLite's C library included) a second time for
//! the compiler, to do what these few lines do.

use std::path::Path;
use std::{env, fs};

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut code = String::new();
    for store in ["sqlite", "postgres"] {
        let dir = Path::new(&manifest).join("migrations").join(store);
        // A directory: cargo reruns this when any file in it is added, removed or changed.
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable directory entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        code += &format!(
            "pub(super) const {}_MIGRATIONS: &[(i64, &str, &str)] = &[\n",
            store.to_uppercase()
        );
        for path in files {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let (version, description) = stem
                .split_once('_')
                .unwrap_or_else(|| panic!("{}: name it NNNN_description.sql", path.display()));
            let version: i64 = version
                .parse()
                .unwrap_or_else(|_| panic!("{}: the name starts with a number", path.display()));
            // As sqlx names them: `0001_init.sql` is version 1, "init".
            let description = description.replace('_', " ");
            code += &format!(
                "    ({version}, {description:?}, include_str!({:?})),\n",
                path.display().to_string()
            );
        }
        code += "];\n";
    }
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
