// Put before docs/sdk.md's kAfterCommit snippet to compile it.
#include "stowage/sdk.h"
