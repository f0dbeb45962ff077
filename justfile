# heartbeats: the project's front door. `just --list` shows the recipes.

version := `sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1`
revision := `git rev-parse --short HEAD 2>/dev/null || echo unknown`

# Debug build of the binary for this machine.
build:
    cargo build

# Static musl release binaries for both arches, into dist/heartbeats-{amd64,arm64}.
build-static:
    cargo build --release --locked --target x86_64-unknown-linux-musl
    cargo build --release --locked --target aarch64-unknown-linux-musl
    mkdir -p dist
    cp target/x86_64-unknown-linux-musl/release/heartbeats dist/heartbeats-amd64
    cp target/aarch64-unknown-linux-musl/release/heartbeats dist/heartbeats-arm64
    ls -l dist

# The whole test suite (the README's test command).
test:
    cargo test

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Five real beats against a local fake sink that prints them.
demo:
    cargo run --example demo

# Images for amd64 and arm64 from the static binaries (offline: the `prebuilt` stage).
image: build-static
    for arch in amd64 arm64; do \
        podman build --target prebuilt --platform linux/$arch \
            --build-arg VERSION={{version}} --build-arg REVISION={{revision}} \
            -t localhost/heartbeats:{{version}}-$arch . ; \
    done
    podman images localhost/heartbeats

# Export each image's root filesystem and run the real image tests against it.
image-test: image
    #!/usr/bin/env bash
    set -euo pipefail
    for arch in amd64 arm64; do
        root="target/image-root/$arch"
        rm -rf "$root" && mkdir -p "$root"
        container=$(podman create --platform "linux/$arch" "localhost/heartbeats:{{version}}-$arch")
        podman export "$container" | tar -C "$root" -xf -
        podman rm "$container" > /dev/null
        export "HEARTBEATS_IMAGE_ROOT_${arch^^}=$PWD/$root"
    done
    podman image inspect "localhost/heartbeats:{{version}}-amd64" "localhost/heartbeats:{{version}}-arm64" \
        --format '{{"{{"}}.Architecture{{"}}"}} {{"{{"}}.Size{{"}}"}} bytes, user {{"{{"}}.Config.User{{"}}"}}'
    cargo test --test image -- --ignored --nocapture

# Footprint benchmark (binary size, RSS, start-up, CPU per beat, schedule, threads), http and https.
bench: build-static
    cargo bench --bench footprint

# One million beats at 1 ms with injected faults: RSS, fds and sequence checked at the end.
soak: build-static
    cargo bench --bench footprint -- --soak

# Everything CI runs.
ci: lint test image-test
