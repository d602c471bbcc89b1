// The OpenAPI 3.1 description of the API (docs/openapi.yaml, the source), as
// compact JSON: the body of GET /openapi.json. The build makes it from the
// YAML (server/api/openapi_to_cc.py), so it always describes the routes this
// binary was built with.
#pragma once

#include <string_view>

namespace stowage::api {

// The whole JSON document; static, valid for the life of the program.
std::string_view OpenApiJson() noexcept;

}  // namespace stowage::api
