#include "version_info.h"

#include <boost/version.hpp>

#include "loader/plugin_loader.h"
#include "stowage/plugin.h"
#include "stowage/version.h"
#include "stowage_revision.h"  // generated: STOWAGE_GIT_REVISION

namespace stowage::server {

std::string_view GitRevision() { return STOWAGE_GIT_REVISION; }

std::string VersionText(std::string_view program) {
  std::string text(program);
  text += " " STOWAGE_VERSION "\n";
  text += "SDK " + std::to_string(STOWAGE_SDK_VERSION_MAJOR) + "." + std::to_string(STOWAGE_SDK_VERSION_MINOR) + "\n";
  text += "revision " STOWAGE_GIT_REVISION "\n";
  text += "Boost " + std::to_string(BOOST_VERSION / 100000) + "." + std::to_string(BOOST_VERSION / 100 % 1000) + "." +
          std::to_string(BOOST_VERSION % 100) + "\n";
  text += "compiler " STOWAGE_COMPILER "\n";
  text += "host " + loader::HostDescription() + "\n";
  return text;
}

}  // namespace stowage::server
