# heartbeats: the project's front door. `just --list` shows the recipes.

version := `sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1`
revision := `git rev-parse --short HEAD 2>/dev/null || echo unknown`
# The commit's time: image timestamps come from it, so a commit always gives the same digest.
source_date_epoch := `git log -1 --format=%ct 2>/dev/null || echo 0`
image := "localhost/heartbeats:" + version
# Where `just push` sends the images: `just push REGISTRY=registry.example.com/team`.
REGISTRY := ""

# Debug build of the binary for this machine.
build:
    cargo build

# Static musl release binaries for both arches, into dist/heartbeats-{amd64,arm64}. Built with
# cargo-auditable, so each binary carries its dependency list for scanners (trivy, grype, syft).
build-static:
    cargo auditable build --release --locked --target x86_64-unknown-linux-musl
    cargo auditable build --release --locked --target aarch64-unknown-linux-musl
    mkdir -p dist
    cp target/x86_64-unknown-linux-musl/release/heartbeats dist/heartbeats-amd64
    cp target/aarch64-unknown-linux-musl/release/heartbeats dist/heartbeats-arm64
    ls -l dist

# The whole test suite (the README's test command).
test:
    cargo test

# The README's test command in a fresh clone of HEAD with nothing beside it: proves that the
# repository stands alone. Compiled dependencies are shared with ./target.
test-clean-clone:
    #!/usr/bin/env bash
    set -euo pipefail
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    git clone --quiet --no-hardlinks . "$scratch/heartbeats"
    cd "$scratch/heartbeats"
    CARGO_TARGET_DIR="{{justfile_directory()}}/target" cargo test

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Five real beats against a local fake sink that prints them.
demo:
    cargo run --example demo

# Images for amd64 and arm64 from the static binaries (offline: the `prebuilt` stage), and the
# manifest list {{image}} over both. Timestamps are the commit's: same commit, same digests.
image: build-static
    #!/usr/bin/env bash
    set -euo pipefail
    # A list left by an earlier build goes first (`manifest create` below fails if one is left).
    podman manifest rm "{{image}}" > /dev/null 2>&1 || true
    for arch in amd64 arm64; do just _image-arch "$arch" "{{image}}-$arch"; done
    podman manifest create "{{image}}" > /dev/null
    for arch in amd64 arm64; do
        podman manifest add "{{image}}" "containers-storage:{{image}}-$arch" > /dev/null
    done
    # Not `podman images`: once a reproducible rebuild has given an image the ID it had, podman
    # 4.3 cannot list a manifest list over it (the list itself still inspects and pushes).
    podman image inspect "{{image}}-amd64" "{{image}}-arm64" --format '{{"{{"}}.RepoTags{{"}}"}} {{"{{"}}.Id{{"}}"}}'
    podman manifest inspect "{{image}}" | grep -E '"(architecture|digest)"'

# One arch's image from dist/heartbeats-ARCH, tagged TAG. Never from the layer cache: a cached
# stage would carry the IDs of whatever build made it, and the digest would depend on history.
_image-arch arch tag:
    podman build --quiet --no-cache --target prebuilt --platform linux/{{arch}} \
        --timestamp {{source_date_epoch}} --build-arg VERSION={{version}} \
        --build-arg REVISION={{revision}} -t {{tag}} .

# Builds everything a second time from the same commit, the binary in a clean target directory
# and the images again, and fails unless the bytes and image IDs are the same.
image-reproducible: image
    #!/usr/bin/env bash
    set -euo pipefail
    CARGO_TARGET_DIR=target/reproducible cargo auditable build --release --locked \
        --target x86_64-unknown-linux-musl
    cmp target/reproducible/x86_64-unknown-linux-musl/release/heartbeats dist/heartbeats-amd64
    for arch in amd64 arm64; do
        just _image-arch "$arch" "{{image}}-$arch-again" > /dev/null
        first=$(podman image inspect --format '{{"{{"}}.Id{{"}}"}}' "{{image}}-$arch")
        again=$(podman image inspect --format '{{"{{"}}.Id{{"}}"}}' "{{image}}-$arch-again")
        podman rmi "{{image}}-$arch-again" > /dev/null
        echo "$arch: $first, again $again"
        [ "$first" = "$again" ] || { echo "$arch: two builds of one commit differ" >&2; exit 1; }
    done
    echo "reproducible: same binary bytes (amd64), same image IDs (amd64, arm64)"

# Pushes both images and the manifest list over them: `just push REGISTRY=registry.example.com/team`.
push: image
    #!/usr/bin/env bash
    set -euo pipefail
    registry="{{REGISTRY}}"
    [ -n "$registry" ] || { echo "set the registry: just push REGISTRY=registry.example.com/team" >&2; exit 1; }
    for arch in amd64 arm64; do
        podman push "{{image}}-$arch" "docker://$registry/heartbeats:{{version}}-$arch"
    done
    podman manifest push --all "{{image}}" "docker://$registry/heartbeats:{{version}}"
    echo "pushed $registry/heartbeats:{{version}} (linux/amd64, linux/arm64)"

# A CycloneDX SBOM of the binary's dependencies (what `cargo auditable` embeds), into dist/.
sbom:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-cyclonedx > /dev/null || cargo install --locked cargo-cyclonedx@0.5.9
    SOURCE_DATE_EPOCH={{source_date_epoch}} cargo cyclonedx --format json --spec-version 1.5 --describe binaries \
        --target x86_64-unknown-linux-musl --no-build-deps
    mkdir -p dist
    mv heartbeats_bin.cdx.json dist/heartbeats-{{version}}.cdx.json
    echo "dist/heartbeats-{{version}}.cdx.json"

# Export each image's root filesystem and run the real image tests against it.
image-test: image
    #!/usr/bin/env bash
    set -euo pipefail
    for arch in amd64 arm64; do
        root="target/image-root/$arch"
        rm -rf "$root" && mkdir -p "$root"
        container=$(podman create --platform "linux/$arch" "{{image}}-$arch")
        podman export "$container" | tar -C "$root" -xf -
        podman rm "$container" > /dev/null
        export "HEARTBEATS_IMAGE_ROOT_${arch^^}=$PWD/$root"
    done
    podman image inspect "{{image}}-amd64" "{{image}}-arm64" \
        --format '{{"{{"}}.Architecture{{"}}"}} {{"{{"}}.Size{{"}}"}} bytes, user {{"{{"}}.Config.User{{"}}"}}'
    cargo test --test image -- --ignored --nocapture

# Footprint benchmark (binary size, RSS, start-up, CPU per beat, schedule, threads), http and https.
bench: build-static
    cargo bench --bench footprint

# One million beats at 1 ms with injected faults: RSS, fds and sequence checked at the end.
soak:
    cargo test --release --test soak -- --ignored --nocapture

# Everything CI runs (`.ci/run` installs the tools, then runs this).
ci: lint test-clean-clone image-test image-reproducible
