// The SDK version. A plugin built against another major version is refused
// by the host; a plugin built against a newer minor version than the host's
// is refused too (it may rely on what the host lacks). See docs/sdk.md.
#pragma once

#define STOWAGE_SDK_VERSION_MAJOR 2
#define STOWAGE_SDK_VERSION_MINOR 0
