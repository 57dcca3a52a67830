//! The absences ARCHITECTURE.md promises, checked over the parsed source.
//!
//! Each file is parsed with `syn`, and everything compiled only for tests is cut away before
//! the checks: items under `#[cfg(test)]` (modules, functions, impl items, fields, statements)
//! wherever they sit in the file, and files that a `#[cfg(test)] mod name;` brings in. What
//! remains is then read as paths (`tokio::spawn`, `use std::fs`), macro calls (`println!`)
//! and derives, so comments, doc text and a word inside a longer name never count.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// One production source file, parsed, with its test-only parts removed.
struct Source {
    path: PathBuf,
    mentions: Mentions,
}

/// What the production part of a file names.
#[derive(Default)]
struct Mentions {
    /// Every path and `use` path, as its segments (`std::fs::write` → `["std", "fs", "write"]`).
    paths: Vec<Vec<String>>,
    /// The last segment of every macro called (`println`).
    macros: BTreeSet<String>,
    /// The last segment of every derived trait (`Serialize`).
    derives: BTreeSet<String>,
    /// Whether anything is `async` or awaited.
    waits: bool,
}

impl Mentions {
    /// Whether some path contains `wanted` as consecutive segments, e.g. `["fs", "write"]`.
    fn names(&self, wanted: &[&str]) -> bool {
        self.paths.iter().any(|path| {
            path.windows(wanted.len()).any(|window| window.iter().zip(wanted).all(|(a, b)| a == b))
        })
    }

    /// Whether some path starts with `root`, e.g. `["std", "net"]`.
    fn names_under(&self, root: &[&str]) -> bool {
        self.paths.iter().any(|path| path.len() >= root.len() && path[..root.len()] == *root)
    }
}

/// Whether the attributes put an item under `cfg(test)` (alone or inside `all(…)`), so that
/// it exists only in test builds. `cfg(not(test))` and `cfg(any(test, …))` do not.
fn test_only(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        if !attribute.path().is_ident("cfg") {
            return false;
        }
        let Ok(predicate) = attribute.parse_args::<syn::Meta>() else { return false };
        requires_test(&predicate)
    })
}

fn requires_test(predicate: &syn::Meta) -> bool {
    match predicate {
        syn::Meta::Path(path) => path.is_ident("test"),
        syn::Meta::List(list) if list.path.is_ident("all") => list
            .parse_args_with(
                syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
            )
            .is_ok_and(|parts| parts.iter().any(requires_test)),
        _ => false,
    }
}

/// Collects what the production part of a file names, skipping test-only items.
#[derive(Default)]
struct Collector {
    mentions: Mentions,
    /// Out-of-line modules declared test-only here (`#[cfg(test)] mod tests;`).
    test_modules: Vec<String>,
}

impl Collector {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.used(prefix, &name.ident),
            syn::UseTree::Rename(rename) => self.used(prefix, &rename.ident),
            syn::UseTree::Glob(_) => self.mentions.paths.push(prefix.clone()),
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    fn used(&mut self, prefix: &[String], last: &syn::Ident) {
        let mut path = prefix.to_vec();
        // `use std::io::{self, Write}` names `std::io` for `self`.
        if last != "self" {
            path.push(last.to_string());
        }
        self.mentions.paths.push(path);
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attributes = match item {
            syn::Item::Const(item) => &item.attrs,
            syn::Item::Enum(item) => &item.attrs,
            syn::Item::ExternCrate(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::ForeignMod(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            syn::Item::Macro(item) => &item.attrs,
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Static(item) => &item.attrs,
            syn::Item::Struct(item) => &item.attrs,
            syn::Item::Trait(item) => &item.attrs,
            syn::Item::TraitAlias(item) => &item.attrs,
            syn::Item::Type(item) => &item.attrs,
            syn::Item::Union(item) => &item.attrs,
            syn::Item::Use(item) => &item.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if test_only(attributes) {
            if let syn::Item::Mod(module) = item
                && module.content.is_none()
            {
                self.test_modules.push(module.ident.to_string());
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attributes = match item {
            syn::ImplItem::Const(item) => &item.attrs,
            syn::ImplItem::Fn(item) => &item.attrs,
            syn::ImplItem::Type(item) => &item.attrs,
            syn::ImplItem::Macro(item) => &item.attrs,
            _ => return syn::visit::visit_impl_item(self, item),
        };
        if !test_only(attributes) {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attributes = match item {
            syn::TraitItem::Const(item) => &item.attrs,
            syn::TraitItem::Fn(item) => &item.attrs,
            syn::TraitItem::Type(item) => &item.attrs,
            syn::TraitItem::Macro(item) => &item.attrs,
            _ => return syn::visit::visit_trait_item(self, item),
        };
        if !test_only(attributes) {
            syn::visit::visit_trait_item(self, item);
        }
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if !test_only(&field.attrs) {
            syn::visit::visit_field(self, field);
        }
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        if !test_only(&variant.attrs) {
            syn::visit::visit_variant(self, variant);
        }
    }

    fn visit_stmt(&mut self, statement: &'ast syn::Stmt) {
        let attributes = match statement {
            syn::Stmt::Local(local) => &local.attrs,
            syn::Stmt::Macro(statement) => &statement.attrs,
            // Items are filtered by `visit_item`; expressions carry their attributes inside.
            _ => return syn::visit::visit_stmt(self, statement),
        };
        if !test_only(attributes) {
            syn::visit::visit_stmt(self, statement);
        }
    }

    fn visit_expr(&mut self, expression: &'ast syn::Expr) {
        let attributes: &[syn::Attribute] = match expression {
            syn::Expr::Block(block) => &block.attrs,
            syn::Expr::Call(call) => &call.attrs,
            syn::Expr::MethodCall(call) => &call.attrs,
            syn::Expr::Macro(call) => &call.attrs,
            _ => &[],
        };
        if !test_only(attributes) {
            syn::visit::visit_expr(self, expression);
        }
    }

    fn visit_attribute(&mut self, attribute: &'ast syn::Attribute) {
        // Doc text and other attributes are not code; derives are collected apart.
        if attribute.path().is_ident("derive") {
            let _ = attribute.parse_nested_meta(|derived| {
                if let Some(last) = derived.path.segments.last() {
                    self.mentions.derives.insert(last.ident.to_string());
                }
                Ok(())
            });
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.mentions.paths.push(path.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_signature(&mut self, signature: &'ast syn::Signature) {
        self.mentions.waits |= signature.asyncness.is_some();
        syn::visit::visit_signature(self, signature);
    }

    fn visit_expr_async(&mut self, block: &'ast syn::ExprAsync) {
        self.mentions.waits = true;
        syn::visit::visit_expr_async(self, block);
    }

    fn visit_expr_await(&mut self, awaited: &'ast syn::ExprAwait) {
        self.mentions.waits = true;
        syn::visit::visit_expr_await(self, awaited);
    }

    fn visit_macro(&mut self, called: &'ast syn::Macro) {
        if let Some(last) = called.path.segments.last() {
            self.mentions.macros.insert(last.ident.to_string());
        }
        // A macro's body is tokens, not syntax (`format!` arguments, `macro_rules!` rules),
        // so its paths and macro calls are read from the tokens.
        self.tokens(called.tokens.clone());
    }
}

impl Collector {
    /// Collects `a::b::c` paths and `name!` calls from raw tokens.
    fn tokens(&mut self, stream: proc_macro2::TokenStream) {
        use proc_macro2::{Spacing, TokenTree};
        let mut path: Vec<String> = Vec::new();
        // Whether the last tokens were `::`, so the next identifier continues `path`.
        let mut continues = false;
        let mut colon = false;
        for tree in stream {
            match tree {
                TokenTree::Ident(ident) => {
                    if !continues && !path.is_empty() {
                        self.mentions.paths.push(std::mem::take(&mut path));
                    }
                    path.push(ident.to_string());
                    continues = false;
                }
                TokenTree::Punct(punct) if punct.as_char() == ':' => {
                    continues = colon;
                    colon = !colon && punct.spacing() == Spacing::Joint;
                    continue;
                }
                TokenTree::Punct(punct) if punct.as_char() == '!' => {
                    if let Some(last) = path.last() {
                        self.mentions.macros.insert(last.clone());
                    }
                    continues = false;
                }
                TokenTree::Group(group) => {
                    if !path.is_empty() {
                        self.mentions.paths.push(std::mem::take(&mut path));
                    }
                    self.tokens(group.stream());
                    continues = false;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => continues = false,
            }
            colon = false;
        }
        if !path.is_empty() {
            self.mentions.paths.push(path);
        }
    }
}

/// Parses one file's text into what its production part names, and the test-only modules it
/// declares out of line.
fn parse(path: &Path, text: &str) -> (Mentions, Vec<String>) {
    let file = syn::parse_file(text)
        .unwrap_or_else(|error| panic!("{} does not parse: {error}", path.display()));
    let mut collector = Collector::default();
    collector.visit_file(&file);
    (collector.mentions, collector.test_modules)
}

/// The production sources at `relative` (a directory and its subdirectories, or one file),
/// leaving out files that a module declares with `#[cfg(test)] mod name;`.
fn sources_under(relative: &str) -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let mut paths = Vec::new();
    rust_files(&root, &mut paths);
    paths.sort();
    let mut test_files = BTreeSet::new();
    let mut sources = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read source file");
        let (mentions, test_modules) = parse(&path, &text);
        let directory = module_directory(&path);
        test_files.extend(test_modules.iter().map(|name| directory.join(format!("{name}.rs"))));
        sources.push(Source { path, mentions });
    }
    sources.retain(|source| !test_files.contains(&source.path));
    sources
}

/// Every `.rs` file at `path`: the file itself, or those in the directory and below.
fn rust_files(path: &Path, found: &mut Vec<PathBuf>) {
    if !path.is_dir() {
        return found.push(path.to_owned());
    }
    for entry in std::fs::read_dir(path).expect("read source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() || path.extension().is_some_and(|ext| ext == "rs") {
            rust_files(&path, found);
        }
    }
}

/// Where the out-of-line modules a file declares live: beside `mod.rs`, `lib.rs` and
/// `main.rs`, and in the directory named after any other file (`state.rs` → `state/`).
fn module_directory(path: &Path) -> PathBuf {
    let directory = path.parent().expect("a file has a directory");
    match path.file_stem().and_then(|stem| stem.to_str()) {
        Some("mod" | "lib" | "main") | None => directory.to_owned(),
        Some(stem) => directory.join(stem),
    }
}

/// The rule "performs no IO, reads no clock, prints nothing", as names a file must not use.
/// `Some` names the first offence.
fn io_in(mentions: &Mentions) -> Option<String> {
    let roots: [&[&str]; 7] = [
        &["tokio"],
        &["std", "net"],
        &["std", "fs"],
        &["std", "io"],
        &["std", "env"],
        &["std", "process"],
        &["std", "thread"],
    ];
    if let Some(root) = roots.iter().find(|root| mentions.names_under(root)) {
        return Some(root.join("::"));
    }
    // A time may be passed in (`SystemTime` as a type is fine); reading the clock is not.
    let clocks: [&[&str]; 2] = [&["Instant", "now"], &["SystemTime", "now"]];
    if let Some(clock) = clocks.iter().find(|clock| mentions.names(clock)) {
        return Some(clock.join("::"));
    }
    ["print", "println", "eprint", "eprintln", "dbg"]
        .iter()
        .find(|name| mentions.macros.contains(**name))
        .map(|name| format!("{name}!"))
}

/// The sans-IO core: the files ARCHITECTURE.md says perform no IO.
fn sans_io_core() -> Vec<Source> {
    let mut files = sources_under("src/mls");
    files.extend(sources_under("src/client/core"));
    for file in [
        "src/admission.rs",
        "src/pake.rs",
        "src/proto.rs",
        "src/mls_header.rs",
        "src/client/room",
        "src/client/commit_policy.rs",
        "src/client/rejoin.rs",
        "src/client/reconnect.rs",
        "src/client/resume.rs",
        "src/client/gaps.rs",
        "src/client/notice.rs",
        "src/client/ballot.rs",
        "src/client/room_notice.rs",
        "src/relay/vote.rs",
        "src/relay/replay.rs",
    ] {
        files.extend(sources_under(file));
    }
    files
}

#[test]
fn relay_code_never_calls_openmls() {
    for source in sources_under("src/relay") {
        let mentions = &source.mentions;
        let offence = mentions
            .paths
            .iter()
            .find(|path| path.first().is_some_and(|root| root.starts_with("openmls")))
            .map(|path| path.join("::"))
            .or_else(|| mentions.names(&["crate", "mls"]).then(|| "crate::mls".to_owned()))
            .or_else(|| {
                mentions.names(&["crate", "admission"]).then(|| "crate::admission".to_owned())
            });
        assert_eq!(offence, None, "{} mentions it", source.path.display());
    }
}

#[test]
fn the_relay_opens_no_file_but_the_report() {
    for source in sources_under("src/relay") {
        if source.path.ends_with("report.rs") {
            continue;
        }
        let forbidden: [&[&str]; 6] = [
            &["File"],
            &["OpenOptions"],
            &["fs", "write"],
            &["fs", "rename"],
            &["fs", "create_dir"],
            &["fs", "create_dir_all"],
        ];
        for name in forbidden {
            assert!(
                !source.mentions.names(name),
                "{} uses {}",
                source.path.display(),
                name.join("::")
            );
        }
    }
}

#[test]
fn the_sans_io_core_performs_no_io_and_prints_nothing() {
    let files = sans_io_core();
    assert!(files.iter().any(|f| f.path.ends_with("mls/provider.rs")), "the whole of src/mls");
    assert!(!files.iter().any(|f| f.path.ends_with("mls/tests.rs")), "tests are not production");
    assert!(files.iter().any(|f| f.path.ends_with("client/core/link.rs")), "the client core");
    assert!(!files.iter().any(|f| f.path.ends_with("client/core/tests.rs")));
    for source in files {
        assert_eq!(io_in(&source.mentions), None, "{} performs IO", source.path.display());
    }
}

/// The engine drives the client core and decides nothing: it names no kind of frame from
/// the relay (the core, and `dial` for the answer to `Resume`, do), and stays small.
#[test]
fn the_client_engine_only_drives_the_core() {
    let path = "src/client/engine.rs";
    let [engine] = &sources_under(path)[..] else { panic!("one file") };
    let frame_kinds: Vec<String> = engine
        .mentions
        .paths
        .iter()
        .filter(|path| path.len() >= 2 && path[path.len() - 2] == "ServerFrame")
        .map(|path| path.join("::"))
        .collect();
    assert_eq!(frame_kinds, Vec::<String>::new(), "{path} handles frames itself");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    let lines = text.lines().count();
    assert!(lines <= 300, "{path} has {lines} lines: protocol decisions belong in client::core");
}

/// The relay's routing state sits behind one `std::sync::Mutex`, so nothing in it may wait:
/// no `async` and no `.await` (none can then happen under the lock), no clock read (time is
/// passed in), no IO and no printing. Of tokio it names only `Instant`, as a value, and
/// `oneshot`, whose `send` never waits; of `std::net` only `IpAddr`, as a value.
#[test]
fn the_relay_state_never_waits_reads_the_clock_or_performs_io() {
    let files: Vec<Source> = sources_under("src/relay")
        .into_iter()
        .filter(|source| {
            source.path.ends_with("relay/state.rs")
                || source.path.parent().is_some_and(|directory| directory.ends_with("relay/state"))
                // A cluster's copy of the state, and the session logs it feeds (`cluster`).
                || source.path.ends_with("relay/cluster/replica.rs")
                || source.path.ends_with("relay/cluster/log.rs")
        })
        .collect();
    assert!(files.iter().any(|f| f.path.ends_with("state/sessions.rs")), "the whole state");
    assert!(files.iter().any(|f| f.path.ends_with("cluster/replica.rs")), "and its replica");
    assert!(!files.iter().any(|f| f.path.ends_with("state/tests.rs")), "tests are not production");
    // Channels to connection tasks are written with `try_send` only: nothing here waits.
    let allowed: [&[&str]; 4] = [
        &["tokio", "time", "Instant"],
        &["tokio", "sync", "oneshot"],
        &["tokio", "sync", "mpsc"],
        &["std", "net", "IpAddr"],
    ];
    for source in files {
        let mentions = &source.mentions;
        assert!(!mentions.waits, "{} waits", source.path.display());
        let is_allowed = |path: &Vec<String>| {
            allowed.iter().any(|allowed| {
                path.len() >= allowed.len() && path.iter().zip(*allowed).all(|(a, b)| a == b)
            })
        };
        let waived = Mentions {
            paths: mentions.paths.iter().filter(|path| !is_allowed(path)).cloned().collect(),
            macros: mentions.macros.clone(),
            ..Mentions::default()
        };
        assert_eq!(io_in(&waived), None, "{} performs IO", source.path.display());
    }
}

#[test]
fn only_proto_defines_wire_types() {
    let mut files = sources_under("src/relay");
    files.extend(sources_under("src/client"));
    files.extend(sources_under("src/mls"));
    for file in ["src/transport.rs", "src/admission.rs", "src/pake.rs"] {
        files.extend(sources_under(file));
    }
    for source in files {
        let derives = &source.mentions.derives;
        let wire = derives.contains("Serialize") || derives.contains("Deserialize");
        assert!(!wire, "{} derives wire types", source.path.display());
    }
}

/// The parsing itself: code after a test module still counts, test-only items anywhere do
/// not, and neither do comments or doc text.
#[test]
fn test_only_code_is_cut_wherever_it_sits_and_only_it() {
    let text = r#"
        //! Mentions tokio::spawn in a doc comment only.
        #[cfg(test)]
        mod tests { fn f() { println!("in a test"); } }
        #[cfg(test)]
        mod more_tests;
        struct Group;
        impl Group {
            #[cfg(test)]
            fn only_in_tests() { let _ = std::fs::read("x"); }
            fn after_the_test_item(&self) { let _ = std::net::TcpStream::connect("x"); }
        }
        #[cfg(not(test))]
        fn production() { eprintln!("{}", format!("{}", std::time::Instant::now())); }
        #[derive(Debug, serde::Serialize)]
        struct Wire;
    "#;
    let (mentions, test_modules) = parse(Path::new("example.rs"), text);
    assert_eq!(test_modules, ["more_tests"]);
    assert_eq!(io_in(&mentions).as_deref(), Some("std::net"));
    assert!(!mentions.names_under(&["std", "fs"]), "a cfg(test) impl item is cut");
    assert!(!mentions.names_under(&["tokio"]), "doc text is not code");
    assert!(!mentions.macros.contains("println"), "a cfg(test) module is cut");
    assert!(mentions.macros.contains("eprintln"), "cfg(not(test)) is production");
    assert!(mentions.names(&["Instant", "now"]), "macro arguments are code");
    assert!(mentions.derives.contains("Serialize"));
    assert!(!mentions.waits, "the only async code is under cfg(test)");
    let (waiting, _) = parse(Path::new("example.rs"), "fn f() { let _ = async { g().await }; }");
    assert!(waiting.waits);
}
