// A library whose version block says it was built for SDK major version 99:
// the loader must refuse it, naming both versions.
#include "stowage/sdk.h"

extern "C" {
STOWAGE_EXPORT extern const StowagePluginInfo stowage_plugin_info;
const StowagePluginInfo stowage_plugin_info = {STOWAGE_PLUGIN_MAGIC, 99, 0, STOWAGE_BOOST_VERSION,
                                               STOWAGE_COMPILER, STOWAGE_STDLIB_ABI, "wrong_major", "WrongMajor",
                                               "9.9.9"};
}
