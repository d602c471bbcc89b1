// Put before docs/sdk.md's ConfigSchema snippet to compile it.
#include <chrono>
#include <cstdint>
#include <string>

#include "stowage/sdk.h"

