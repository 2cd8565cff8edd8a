#!/usr/bin/env bash
# Builds WeftFFIRust.xcframework (libweft_ffi.a for iOS devices, the iOS simulator and macOS)
# beside Package.swift. Run on a Mac with Xcode and rustup:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#                     aarch64-apple-darwin x86_64-apple-darwin
#   bindings/swift/build-xcframework.sh
# NOT run on the machine Weft is developed on (no Xcode there): see bindings/README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

build() { # target
  cargo rustc --release -p weft-ffi --lib --crate-type staticlib --target "$1"
}
for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin; do
  build "$target"
done

out="$root/target/xcframework"
rm -rf "$out" "$here/WeftFFIRust.xcframework"
mkdir -p "$out/ios-sim" "$out/macos"
lipo -create target/aarch64-apple-ios-sim/release/libweft_ffi.a target/x86_64-apple-ios/release/libweft_ffi.a \
  -output "$out/ios-sim/libweft_ffi.a"
lipo -create target/aarch64-apple-darwin/release/libweft_ffi.a target/x86_64-apple-darwin/release/libweft_ffi.a \
  -output "$out/macos/libweft_ffi.a"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libweft_ffi.a \
  -library "$out/ios-sim/libweft_ffi.a" \
  -library "$out/macos/libweft_ffi.a" \
  -output "$here/WeftFFIRust.xcframework"
echo "built $here/WeftFFIRust.xcframework"
