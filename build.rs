//! Embeds every migration file: `migrations/{sqlite,postgres}/NNNN_description.sql`
//! become `(version, description, sql)` lists in `$OUT_DIR/migrations.rs`, which
//! `src/adapters/sql.rs` includes. And every module of the web client: `static/js/*.js`
//! become a `(file name, source)` list in `$OUT_DIR/static_js.rs`, which
//! `src/http/views.rs` includes, so adding a module is adding its file.
//!
//! Written by hand instead of `sqlx::migrate!`: that macro needs sqlx's `macros` feature,
//! which builds both database drivers (SQLite's C library included) a second time for
//! the compiler, to do what these few lines do.

use std::path::Path;
use std::{env, fs};

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    migrations(Path::new(&manifest));
    client_modules(Path::new(&manifest));
}

fn migrations(manifest: &Path) {
    let mut code = String::new();
    for store in ["sqlite", "postgres"] {
        let dir = manifest.join("migrations").join(store);
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
    write_out("migrations.rs", &code);
}

fn client_modules(manifest: &Path) {
    let dir = manifest.join("static").join("js");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        // One flat directory: modules import each other as "./name.js", and the server
        // rewrites exactly that form (views.rs), with no `../` to resolve.
        .inspect(|path| assert!(!path.is_dir(), "{}: static/js is flat", path.display()))
        // Anything else (an editor's swap or lock file) is not served.
        .filter(|path| {
            path.extension().is_some_and(|e| e == "js")
                && !path
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();
    let mut code = String::from("pub(super) const CLIENT_MODULES: &[(&str, &str)] = &[\n");
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| {
                panic!("{}: name it in UTF-8", path.display());
            });
        code += &format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.display().to_string()
        );
    }
    code += "];\n";
    write_out("static_js.rs", &code);
}

fn write_out(name: &str, code: &str) {
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(name);
    fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
