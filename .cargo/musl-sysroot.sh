#!/usr/bin/env bash
# The C side of a static musl build for a target whose standard library is built from source
# (`-Z build-std`, see the justfile's build-static): Rust's rust-std component would bring musl's
# start files, libc.a and LLVM's libunwind.a in its `self-contained` directory; without it they
# come from here, into target/sysroot/TRIPLE (which .cargo/config.toml puts on the link path):
#   - crt1.o, crti.o, crtn.o and libc.a from Debian's musl-dev for that architecture (Debian 13,
#     whose archive has all four), checked as apt checks it: the release file's signature by
#     Debian's archive keys, the index's SHA-256 in it, the package's SHA-256 in the index,
#   - empty crtbegin.o and crtend.o (rustc names them; musl's static start-up needs neither),
#   - libunwind.a compiled by clang from the LLVM sources in the pinned nightly's rust-src.
# Usage: .cargo/musl-sysroot.sh TRIPLE NIGHTLY   (from the repository root; the justfile's
# build-static runs it with its pinned nightly)
set -euo pipefail

triple=$1
nightly=$2
case "$triple" in
    armv7-unknown-linux-musleabihf) deb=armhf clang_target=armv7-unknown-linux-musleabihf dir=arm-linux-musleabihf ;;
    powerpc64le-unknown-linux-musl) deb=ppc64el clang_target=powerpc64le-unknown-linux-musl dir=powerpc64le-linux-musl ;;
    s390x-unknown-linux-musl) deb=s390x clang_target=s390x-unknown-linux-musl dir=s390x-linux-musl ;;
    riscv64gc-unknown-linux-musl) deb=riscv64 clang_target=riscv64-unknown-linux-musl dir=riscv64-linux-musl ;;
    *) echo "musl-sysroot: no sysroot recipe for '$triple'" >&2; exit 1 ;;
esac
out="target/sysroot/$triple"
if [ -f "$out/libunwind.a" ]; then
    exit 0
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# musl-dev from Debian 13 (trixie): signed release file -> index -> package.
curl -fsSL "$mirror/dists/trixie/InRelease" -o "$work/InRelease"
gpgv --quiet --keyring /usr/share/keyrings/debian-archive-keyring.gpg \
    --output "$work/Release" "$work/InRelease" 2> /dev/null
index="main/binary-$deb/Packages.xz"
index_sha=$(awk -v f="$index" '/^SHA256:/{p=1; next} /^[^ ]/{p=0} p && $3 == f {print $1}' "$work/Release")
curl -fsSL "$mirror/dists/trixie/$index" -o "$work/Packages.xz"
echo "$index_sha  $work/Packages.xz" | sha256sum -c --quiet
xz -dc "$work/Packages.xz" > "$work/Packages"
stanza=$(awk '/^Package: musl-dev$/{p=1} p&&/^$/{exit} p' "$work/Packages")
file=$(sed -n 's/^Filename: //p' <<< "$stanza")
sha=$(sed -n 's/^SHA256: //p' <<< "$stanza")
[ -n "$file" ] && [ -n "$sha" ] || { echo "musl-sysroot: no musl-dev for $deb in trixie" >&2; exit 1; }
curl -fsSL "$mirror/$file" -o "$work/musl-dev.deb"
echo "$sha  $work/musl-dev.deb" | sha256sum -c --quiet
dpkg-deb -x "$work/musl-dev.deb" "$work/root"

mkdir -p "$out/obj"
lib="$work/root/usr/lib/$dir"
include="$work/root/usr/include/$dir"
cp "$lib/crt1.o" "$lib/crti.o" "$lib/crtn.o" "$lib/libc.a" "$out/"
: > "$work/empty.c"
clang --target="$clang_target" -c "$work/empty.c" -o "$out/crtbegin.o"
cp "$out/crtbegin.o" "$out/crtend.o"

# LLVM's libunwind, as Rust's own build compiles it for musl targets.
unwind="$(rustc "+$nightly" --print sysroot)/lib/rustlib/src/rust/src/llvm-project/libunwind"
flags=(--target="$clang_target" -isystem "$include" -I "$unwind/include" -O2 -fPIC
       -funwind-tables -fvisibility=hidden -fno-stack-protector -ffile-prefix-map="$unwind"=libunwind
       -D_LIBUNWIND_IS_NATIVE_ONLY -D_LIBUNWIND_HIDE_SYMBOLS -DNDEBUG)
for c in UnwindLevel1.c UnwindLevel1-gcc-ext.c Unwind-sjlj.c; do
    clang "${flags[@]}" -std=c99 -c "$unwind/src/$c" -o "$out/obj/$c.o"
done
for cpp in libunwind.cpp Unwind-EHABI.cpp; do
    clang++ "${flags[@]}" -std=c++17 -nostdinc++ -fno-exceptions -fno-rtti -c "$unwind/src/$cpp" -o "$out/obj/$cpp.o"
done
for s in UnwindRegistersRestore.S UnwindRegistersSave.S; do
    clang "${flags[@]}" -c "$unwind/src/$s" -o "$out/obj/$s.o"
done
llvm-ar rcsD "$out/libunwind.a" "$out"/obj/*.o
rm -r "$out/obj"
echo "musl-sysroot: $out ($(sed -n 's/^Version: //p' <<< "$stanza") from Debian 13)"
