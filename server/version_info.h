// What `stowaged --version` and `stowage --version` print: the version, the
// SDK version, the git revision it was built from, Boost and the compiler.
#pragma once

#include <string>
#include <string_view>

namespace stowage::server {

// The git revision this build comes from (`git describe --always --dirty`
// at build time), or "unknown" when it was not built from a git checkout.
std::string_view GitRevision();

// Several lines, the first "<program> <version>" (as help2man reads it):
//   stowaged 2.0.0
//   SDK 2.0
//   revision 0123456789ab
//   Boost 1.81.0
//   compiler gcc 12.2.0
//   host SDK 2.0, gcc 12.2.0, libstdc++ cxx11-abi 1, Boost 1.81.0
// The last line is what a plugin's version block must match (docs/sdk.md).
std::string VersionText(std::string_view program);

}  // namespace stowage::server
