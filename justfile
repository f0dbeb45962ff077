# heartbeats: the project's front door. `just --list` shows the recipes.

version := `sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1`
revision := `git rev-parse --short HEAD 2>/dev/null || echo unknown`
# The commit's time: image timestamps come from it, so a commit always gives the same digest.
source_date_epoch := `git log -1 --format=%ct 2>/dev/null || echo 0`
image := "localhost/heartbeats:" + version
# Where `just push` sends the images: `just push REGISTRY=registry.example.com/team`.
REGISTRY := ""
# Every platform of the image, as podman's platform, the binary's name in dist/ and the Rust
# target: those of the Go image (distroless/static's list, and riscv64).
platforms := "linux/amd64,amd64,x86_64-unknown-linux-musl linux/arm64,arm64,aarch64-unknown-linux-musl linux/arm/v7,armv7,armv7-unknown-linux-musleabihf linux/ppc64le,ppc64le,powerpc64le-unknown-linux-musl linux/s390x,s390x,s390x-unknown-linux-musl linux/riscv64,riscv64,riscv64gc-unknown-linux-musl"
# The targets whose standard library is built from source (`-Z build-std`) on a pinned nightly:
# s390x has none from Rust (tier 3), and the registry mirror this project builds against carries
# none for the other three; one way for all four keeps every machine's build the same.
from_source := "armv7-unknown-linux-musleabihf powerpc64le-unknown-linux-musl s390x-unknown-linux-musl riscv64gc-unknown-linux-musl"
nightly := "nightly-2026-05-19"

# Debug build of the binary for this machine.
build:
    cargo build

# Static musl release binaries for every platform, into dist/heartbeats-{amd64,arm64,armv7,
# ppc64le,s390x,riscv64}. Built with cargo-auditable, so each binary carries its dependency list
# for scanners (trivy, grype, syft).
build-static:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo auditable build --release --locked --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl
    for triple in {{from_source}}; do bash .cargo/musl-sysroot.sh "$triple" "{{nightly}}"; done
    cargo +{{nightly}} auditable build --release --locked -Z build-std=std,panic_abort \
        $(printf -- '--target %s ' {{from_source}})
    mkdir -p dist
    for p in {{platforms}}; do
        IFS=, read -r platform arch triple <<< "$p"
        cp "${CARGO_TARGET_DIR:-target}/$triple/release/heartbeats" "dist/heartbeats-$arch"
    done
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

# The compiled-in time zones (src/schedule/zones.rs) from a tzdata release, read from the TZif
# files of the PyPI package `tzdata` (which publishes every IANA release): `just zones 2025.2`.
# Needs python3 and pip; the generated file is committed, so builds need neither.
zones release="2025.2":
    #!/usr/bin/env python3
    import os, struct, subprocess, sys, tempfile, zipfile


    release = "{{release}}"
    out_path = "src/schedule/zones.rs"
    # Transitions before this instant (2025-01-01T00:00:00Z) are not kept.
    START = 1735689600

    def tzif(data):
        """(transitions as (time, (offset, dst, abbreviation))), footer) of a TZif v2+ file."""
        def counts(at):
            return struct.unpack(">6l", data[at + 20:at + 44])
        isut, isstd, leap, times, types, chars = counts(0)
        at = 44 + times * 5 + types * 6 + chars + leap * 8 + isstd + isut
        if data[:4] != b"TZif" or data[at:at + 4] != b"TZif":
            raise SystemExit("not a TZif v2+ file")
        isut, isstd, leap, times, types, chars = counts(at)
        at += 44
        when = struct.unpack(">%dq" % times, data[at:at + 8 * times])
        at += 8 * times
        index = data[at:at + times]
        at += times
        kinds = []
        for _ in range(types):
            offset, dst, abbr = struct.unpack(">lBB", data[at:at + 6])
            kinds.append((offset, dst, abbr))
            at += 6
        text = data[at:at + chars]
        at += chars + leap * 12 + isstd + isut
        kinds = [(o, d, text[a:text.index(b"\0", a)].decode()) for o, d, a in kinds]
        footer = data[at:].strip(b"\n").decode()
        return [(t, kinds[i]) for t, i in zip(when, index)], footer

    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", "-d", scratch, "tzdata==" + release], check=True)
        wheel = zipfile.ZipFile(os.path.join(scratch, os.listdir(scratch)[0]))
        names = sorted(wheel.read("tzdata/zones").decode().split())
        version = wheel.read("tzdata/zoneinfo/tzdata.zi").decode().split("\n")[0].split()[-1]
        zones = {n: tzif(wheel.read("tzdata/zoneinfo/" + n)) for n in names}

    # zic's `-p` link, which Debian's tzdata still installs (so Go finds it): New York's rules.
    names = sorted(names + ["posixrules"])
    zones["posixrules"] = zones["America/New_York"]

    datas, data_of = [], []
    for name in names:
        transitions, footer = zones[name]
        before = [k for t, k in transitions if t < START]
        later = [(t, k) for t, k in transitions if t >= START]
        listed = None
        if later:
            kinds = sorted(set([before[-1]] + [k for _, k in later]))
            listed = (kinds.index(before[-1]), tuple(kinds),
                      tuple((t - START, kinds.index(k)) for t, k in later))
        key = (footer, listed)
        if key not in datas:
            datas.append(key)
        data_of.append(datas.index(key))

    def rust_str(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = []
    w = out.append
    w("//! The compiled-in time zones, generated by `just zones` from tzdata %s (the PyPI package\n" % version)
    w("//! tzdata %s): do not edit. Each zone is its POSIX TZ rule, and for the few zones whose rule\n" % release)
    w("//! takes over only later, the transitions from 2025 on before it.\n\n")
    w("/// The tz database release.\n")
    w("pub(super) const TZDATA: &str = %s;\n\n" % rust_str(version))
    w("/// Every zone name of the tz database (links included), sorted, each ended by a newline.\n")
    w("pub(super) const NAMES: &str = \"\\\n")
    for name in names:
        w("%s\\n\\\n" % name)
    w("\";\n\n")
    w("/// `ZONES[ZONE_OF[i]]` is the zone of the `i`th name in [`NAMES`].\n")
    w("pub(super) const ZONE_OF: [u8; %d] = [\n" % len(names))
    for i in range(0, len(data_of), 24):
        w("    " + ", ".join(str(d) for d in data_of[i:i + 24]) + ",\n")
    w("];\n\n")
    w("/// Each zone: its POSIX TZ rule, and its transitions from 2025 on where the rule comes later.\n")
    w("pub(super) const ZONES: [(&str, Option<&Listed>); %d] = [\n" % len(datas))
    for footer, listed in datas:
        if listed is None:
            w("    (%s, None),\n" % rust_str(footer))
            continue
        initial, kinds, changes = listed
        w("    (\n        %s,\n        Some(&Listed {\n" % rust_str(footer))
        w("            initial: %d,\n            kinds: &[\n" % initial)
        for offset, dst, abbr in kinds:
            w("                (%d, %s, %s),\n" % (offset, "true" if dst else "false", rust_str(abbr)))
        w("            ],\n            changes: &[\n")
        for i in range(0, len(changes), 6):
            w("                " + " ".join("(%d, %d)," % c for c in changes[i:i + 6]) + "\n")
        w("            ],\n        }),\n    ),\n")
    w("];\n\n")
    w("/// Transitions listed from 2025 on: `kinds` are (offset east of UTC in seconds, daylight saving,\n")
    w("/// abbreviation); `initial` is the kind in effect at 2025-01-01T00:00:00Z; each change is\n")
    w("/// (seconds after that instant, the kind from then on).\n")
    w("pub(super) struct Listed {\n    pub initial: u8,\n    pub kinds: &'static [(i32, bool, &'static str)],\n")
    w("    pub changes: &'static [(u32, u8)],\n}\n")
    with open(out_path, "w") as f:
        f.write("".join(out))
    subprocess.run(["rustfmt", "--edition", "2024", out_path], check=True)
    print("%s: tzdata %s, %d names, %d zones" % (out_path, version, len(names), len(datas)))

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Five real beats against a local fake sink that prints them.
demo:
    cargo run --example demo

# Images for every platform from the static binaries (offline: the `prebuilt` stage), and the
# manifest list {{image}} over them. Timestamps are the commit's: same commit, same digests.
image: build-static
    #!/usr/bin/env bash
    set -euo pipefail
    # A list left by an earlier build goes first (`manifest create` below fails if one is left).
    podman manifest rm "{{image}}" > /dev/null 2>&1 || true
    podman manifest create "{{image}}" > /dev/null
    for p in {{platforms}}; do
        IFS=, read -r platform arch triple <<< "$p"
        just _image-arch "$platform" "{{image}}-$arch"
        podman manifest add "{{image}}" "containers-storage:{{image}}-$arch" > /dev/null
    done
    # Not `podman images`: once a reproducible rebuild has given an image the ID it had, podman
    # 4.3 cannot list a manifest list over it (the list itself still inspects and pushes).
    for p in {{platforms}}; do
        IFS=, read -r platform arch triple <<< "$p"
        podman image inspect "{{image}}-$arch" --format "{{"{{"}}.RepoTags{{"}}"}} $platform {{"{{"}}.Id{{"}}"}}"
    done
    podman manifest inspect "{{image}}" | grep -E '"(architecture|variant|digest)"'

# One platform's image from dist/heartbeats-ARCH (the Containerfile maps the platform to it),
# tagged TAG. Never from the layer cache: a cached stage would carry the IDs of whatever build
# made it, and the digest would depend on history.
_image-arch platform tag:
    podman build --quiet --no-cache --target prebuilt --platform {{platform}} \
        --timestamp {{source_date_epoch}} --build-arg VERSION={{version}} \
        --build-arg REVISION={{revision}} -t {{tag}} .

# Builds everything a second time from the same commit, every binary in a clean target
# directory and every image again, and fails unless the bytes and image IDs are the same.
image-reproducible: image
    #!/usr/bin/env bash
    set -euo pipefail
    export CARGO_TARGET_DIR=target/reproducible
    cargo auditable build --release --locked --target x86_64-unknown-linux-musl --target aarch64-unknown-linux-musl
    cargo +{{nightly}} auditable build --release --locked -Z build-std=std,panic_abort \
        $(printf -- '--target %s ' {{from_source}})
    for p in {{platforms}}; do
        IFS=, read -r platform arch triple <<< "$p"
        cmp "target/reproducible/$triple/release/heartbeats" "dist/heartbeats-$arch"
        just _image-arch "$platform" "{{image}}-$arch-again" > /dev/null
        first=$(podman image inspect --format '{{"{{"}}.Id{{"}}"}}' "{{image}}-$arch")
        again=$(podman image inspect --format '{{"{{"}}.Id{{"}}"}}' "{{image}}-$arch-again")
        podman rmi "{{image}}-$arch-again" > /dev/null
        echo "$platform: $first, again $again"
        [ "$first" = "$again" ] || { echo "$platform: two builds of one commit differ" >&2; exit 1; }
    done
    echo "reproducible: same binary bytes and same image IDs on every platform"

# Pushes every platform's image and the manifest list over them:
# `just push REGISTRY=registry.example.com/team`.
push: image
    #!/usr/bin/env bash
    set -euo pipefail
    registry="{{REGISTRY}}"
    [ -n "$registry" ] || { echo "set the registry: just push REGISTRY=registry.example.com/team" >&2; exit 1; }
    for p in {{platforms}}; do
        IFS=, read -r platform arch triple <<< "$p"
        podman push "{{image}}-$arch" "docker://$registry/heartbeats:{{version}}-$arch"
    done
    podman manifest push --all "{{image}}" "docker://$registry/heartbeats:{{version}}"
    echo "pushed $registry/heartbeats:{{version}} ($(printf '%s ' {{platforms}} | sed 's/,[^ ]*//g'))"

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

# Export each image's root filesystem and run the real image tests against it (every platform
# but amd64 under qemu-user).
image-test: image
    #!/usr/bin/env bash
    set -euo pipefail
    for p in {{platforms}}; do
        IFS=, read -r platform arch triple <<< "$p"
        root="target/image-root/$arch"
        rm -rf "$root" && mkdir -p "$root"
        container=$(podman create --platform "$platform" "{{image}}-$arch")
        podman export "$container" | tar -C "$root" -xf -
        podman rm "$container" > /dev/null
        export "HEARTBEATS_IMAGE_ROOT_${arch^^}=$PWD/$root"
        podman image inspect "{{image}}-$arch" \
            --format "$platform: {{"{{"}}.Size{{"}}"}} bytes, user {{"{{"}}.Config.User{{"}}"}}"
    done
    cargo test --test image -- --ignored --nocapture

# Footprint benchmark (binary size, RSS, private memory, start-up, CPU per beat, schedule,
# threads), http and https; then who holds the heap (DHAT).
bench: build-static
    cargo bench --bench footprint
    cargo bench --bench heap 2> /dev/null

# One million beats at 1 ms with injected faults: RSS, fds and sequence checked at the end.
soak:
    cargo test --release --test soak -- --ignored --nocapture

# Everything CI runs (`.ci/run` installs the tools, then runs this).
ci: lint test-clean-clone image-test image-reproducible
