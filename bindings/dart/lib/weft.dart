/// Weft for Dart and Flutter: the generated bindings of weft-ffi (lib/src/weft_ffi.dart, from
/// scripts/generate-bindings). Load the native library first, as bindings/README.md says:
/// `configureDefaultBindings(libraryPath: ...)`.
library weft;

export 'src/weft_ffi.dart';
