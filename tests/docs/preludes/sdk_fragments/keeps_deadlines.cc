// Put before docs/sdk.md's kKeepsDeadlines snippet to compile it.
#include "stowage/sdk.h"
