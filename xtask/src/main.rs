//! Builds Gantry without cargo-leptos, offline: the `frontend` crate for wasm32, its JS glue through the
//! `wasm-bindgen-cli-support` library (pinned to the same version as the `wasm-bindgen` in Cargo.lock, so nothing
//! is installed or downloaded), `wasm-opt` from npm's binaryen for release builds, the stylesheet and static
//! assets, and finally the `gantry` binary. The output layout is cargo-leptos's: `target/site/pkg/gantry.{js,css}`
//! and `gantry_bg.wasm`.
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
    std::fs::create_dir_all(&pkg).with_context(|| format!("could not create {}", pkg.display()))?;
    eprintln!("xtask: generating JS bindings for {}", wasm.display());
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .out_name(OUTPUT_NAME)
        .web(true)?
        .typescript(false)
        .debug(!release)
        .generate(&pkg)
        .context("wasm-bindgen could not generate the bindings")?;

    if release {
        optimize_wasm(&pkg.join(format!("{OUTPUT_NAME}_bg.wasm")))?;
    }

    let root = workspace_root();
    std::fs::copy(root.join("style/main.css"), pkg.join(format!("{OUTPUT_NAME}.css")))
        .context("could not copy style/main.css")?;
    copy_dir(&root.join("style/assets"), &site)?;
    let size = std::fs::metadata(pkg.join(format!("{OUTPUT_NAME}_bg.wasm")))?.len();
    eprintln!("xtask: site ready in {} (wasm: {} KiB)", site.display(), size / 1024);
    Ok(())
}

/// Runs binaryen's `wasm-opt -Oz`. Only npm's binaryen (frontend/package.json, installed by scripts/setup) is
/// used: Debian's wasm-opt 108 produces bundles that never hydrate in current Chromium.
fn optimize_wasm(wasm: &Path) -> Result<()> {
    let wasm_opt = workspace_root().join("frontend/node_modules/.bin/wasm-opt");
    if !wasm_opt.is_file() {
        eprintln!(
            "xtask: {} is missing (run scripts/setup); the release bundle stays unoptimised",
            wasm_opt.display()
        );
        return Ok(());
    }
    let before = std::fs::metadata(wasm)?.len();
    run(Command::new(&wasm_opt)
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-mutable-globals",
            "--enable-reference-types",
            "--enable-multivalue",
        ])
        .arg(wasm)
        .arg("-o")
        .arg(wasm))?;
    let after = std::fs::metadata(wasm)?.len();
    eprintln!("xtask: wasm-opt {} KiB -> {} KiB", before / 1024, after / 1024);
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
