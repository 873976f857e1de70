//! Builds Gantry without cargo-leptos, offline: the `frontend` crate for wasm32, its JS glue through the
//! `wasm-bindgen-cli-support` library (pinned to the same version as the `wasm-bindgen` in Cargo.lock, so nothing
//! is installed or downloaded), `wasm-opt` from npm's binaryen for release builds, the stylesheet and static
//! assets, and finally the `gantry` binary. The output layout is cargo-leptos's with `--split`:
//! `target/site/pkg/gantry.{js,css}`, `gantry_bg.wasm`, and the lazily loaded chunks with their loader and manifest.
//!
//! The bundle is split as `cargo leptos --split` does it, with the same library (`wasm_split_cli_support`): the
//! linker keeps relocations (`--emit-relocs`, set for wasm32 in `.cargo/config.toml`), the splitter cuts the module
//! at every `#[lazy]` / `#[lazy_route]` point into a main module and chunks, and wasm-bindgen then runs on the main
//! module alone, keeping the exports the chunks link against.
//!
//! Usage: `cargo xtask build [--release]` (bundle + server) or `cargo xtask site [--release]` (bundle only).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};

const OUTPUT_NAME: &str = "gantry";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let release = args.iter().any(|a| a == "--release");
    let started = Instant::now();
    match args.first().map(String::as_str) {
        Some("build") => {
            build_site(release)?;
            build_server(release)?;
        }
        Some("site") => build_site(release)?,
        _ => bail!("usage: cargo xtask build [--release] | cargo xtask site [--release]"),
    }
    eprintln!("xtask: done in {:.0?}", started.elapsed());
    Ok(())
}

fn workspace_root() -> PathBuf {
    // `cargo run` sets CARGO_MANIFEST_DIR when it starts xtask: read it then, not at compile time, so that a binary
    // left in a target dir shared by two checkouts (CI's cache) works on the checkout that runs it.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target dir: `CARGO_TARGET_DIR` when set (CI may share one), else the workspace's `target/`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The site always lands in the workspace's `target/site`, where the server looks for it in a source checkout.
fn site_dir() -> PathBuf {
    workspace_root().join("target/site")
}

fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .with_context(|| format!("could not start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn build_site(release: bool) -> Result<()> {
    let profile = if release { "wasm-release" } else { "dev" };
    run(cargo().args([
        "build",
        "--package",
        "frontend",
        "--lib",
        "--target",
        WASM_TARGET,
        "--profile",
        profile,
    ]))?;
    let profile_dir = if release { "wasm-release" } else { "debug" };
    let wasm = target_dir().join(WASM_TARGET).join(profile_dir).join("frontend.wasm");

    let site = site_dir();
    let pkg = site.join("pkg");
    remove_previous_bundle(&pkg)?;
    std::fs::create_dir_all(&pkg).with_context(|| format!("could not create {}", pkg.display()))?;
    let main_module = wasm.with_file_name("frontend_split.wasm");
    let chunks = split_wasm(&wasm, &main_module, &pkg)?;
    eprintln!("xtask: generating JS bindings for {}", main_module.display());
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&main_module)
        .out_name(OUTPUT_NAME)
        .web(true)?
        .typescript(false)
        .debug(!release)
        .keep_lld_exports(true)
        .demangle(false)
        .generate(&pkg)
        .context("wasm-bindgen could not generate the bindings")?;

    if release {
        let mut modules = vec![pkg.join(format!("{OUTPUT_NAME}_bg.wasm"))];
        modules.extend(chunks.iter().cloned());
        optimize_wasm(&modules)?;
    }

    let root = workspace_root();
    std::fs::copy(root.join("style/main.css"), pkg.join(format!("{OUTPUT_NAME}.css")))
        .context("could not copy style/main.css")?;
    copy_dir(&root.join("style/assets"), &site)?;
    eprintln!(
        "xtask: site ready in {} (first route's wasm: {} KiB; {} lazily loaded chunks: {} KiB)",
        site.display(),
        total_bytes(&[pkg.join(format!("{OUTPUT_NAME}_bg.wasm"))]) / 1024,
        chunks.len(),
        total_bytes(&chunks) / 1024
    );
    Ok(())
}

/// The loader the main module imports the chunks through, named as cargo-leptos names it (Leptos's
/// `HydrationScripts` looks for this name when files are not hashed).
const SPLIT_LOADER: &str = "__wasm_split.______________________.js";
/// The map from each lazy function to the chunks it needs, which the server reads to preload a route's chunks.
const SPLIT_MANIFEST: &str = "__wasm_split_manifest.json";

/// Cuts `wasm` at its lazy split points: the main module goes to `main_module` (for wasm-bindgen), the chunks,
/// their loader and the manifest into `pkg`. Returns the chunks' paths.
fn split_wasm(wasm: &Path, main_module: &Path, pkg: &Path) -> Result<Vec<PathBuf>> {
    let input = std::fs::read(wasm).with_context(|| format!("could not read {}", wasm.display()))?;
    let main_js = format!("/pkg/{OUTPUT_NAME}.js");
    let link_name = format!("./{SPLIT_LOADER}");
    let split = wasm_split_cli_support::transform({
        let mut options = wasm_split_cli_support::Options::new(&input);
        options.output_dir = pkg;
        options.main_out_path = main_module;
        options.main_module = &main_js;
        options.link_name = &link_name;
        options
    })
    .map_err(|error| anyhow::anyhow!("{error:?}"))
    .context("the bundle could not be split at its lazy routes")?;
    let manifest = serde_json::to_string_pretty(&split.prefetch_map)?;
    std::fs::write(pkg.join(SPLIT_MANIFEST), manifest).context("could not write the split manifest")?;
    Ok(split.split_modules)
}

/// Removes the previous build's bundle, so that chunks a new build no longer makes are not served.
fn remove_previous_bundle(pkg: &Path) -> Result<()> {
    if !pkg.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(pkg)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if name.ends_with(".wasm") || name.starts_with("__wasm_split") {
            std::fs::remove_file(&path).with_context(|| format!("could not remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Runs binaryen's `wasm-opt -Oz` on each module, one per core at a time (a split bundle has a hundred and more
/// chunks, most of them small). Only npm's binaryen (frontend/package.json, installed by scripts/setup) is used:
/// Debian's wasm-opt 108 produces bundles that never hydrate in current Chromium.
fn optimize_wasm(modules: &[PathBuf]) -> Result<()> {
    let wasm_opt = workspace_root().join("frontend/node_modules/.bin/wasm-opt");
    if !wasm_opt.is_file() {
        eprintln!(
            "xtask: {} is missing (run scripts/setup); the release bundle stays unoptimised",
            wasm_opt.display()
        );
        return Ok(());
    }
    let started = Instant::now();
    let before = total_bytes(modules);
    let queue = std::sync::Mutex::new(modules.iter());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let Some(module) = queue.lock().expect("no worker panics holding it").next() else {
                            return Ok(());
                        };
                        optimize_module(&wasm_opt, module)?;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|handle| handle.join().expect("a wasm-opt worker panicked"))
    })?;
    let after = total_bytes(modules);
    eprintln!(
        "xtask: wasm-opt on {} modules: {} KiB -> {} KiB in {:.0?}",
        modules.len(),
        before / 1024,
        after / 1024,
        started.elapsed()
    );
    Ok(())
}

/// The files' sizes together (a missing file counts 0).
fn total_bytes(files: &[PathBuf]) -> u64 {
    files.iter().map(|f| std::fs::metadata(f).map_or(0, |m| m.len())).sum()
}

/// One `wasm-opt -Oz`, its output shown only when it fails (it warns about name sections on every chunk).
fn optimize_module(wasm_opt: &Path, module: &Path) -> Result<()> {
    let output = Command::new(wasm_opt)
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
        ])
        .arg(module)
        .arg("-o")
        .arg(module)
        .output()
        .with_context(|| format!("could not start {}", wasm_opt.display()))?;
    if !output.status.success() {
        bail!(
            "wasm-opt failed on {}: {}",
            module.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("could not copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn build_server(release: bool) -> Result<()> {
    let mut command = cargo();
    command.args(["build", "--package", "server", "--bin", "gantry"]);
    if release {
        command.arg("--release");
    }
    run(&mut command)
}
