#include "api/query_string.h"

#include <boost/url/pct_string_view.hpp>
#include <boost/url/url.hpp>

namespace stowage::api {

std::optional<std::map<std::string, std::string>> ParseQueryString(std::string_view query) {
  const auto escaped = boost::urls::make_pct_string_view(query);
  if (!escaped) return std::nullopt;
  // Boost.URL splits the parameters; its setter escapes what a query may not
  // hold raw (a request target may), so that every byte reads as itself.
  boost::urls::url holder;
  holder.set_encoded_query(*escaped);
  std::map<std::string, std::string> values;
  for (const auto& param : holder.params(boost::urls::encoding_opts(/*space_as_plus=*/true))) {
    if (param.key.empty() && !param.has_value) continue;  // "&&"
    values.emplace(param.key, param.value);
  }
  return values;
}

std::string ShownParameter(const std::string& value) {
  return value.size() <= 64 ? value : value.substr(0, 64) + "...";
}

}  // namespace stowage::api
