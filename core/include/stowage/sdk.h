// Everything a stage author needs: include this one header. The chat part
// (stowage/chat/: the chat store's attribute names, messages as JSON text)
// is not included: a stage that uses it includes it. The test kit is in
// stowage/testkit/.
#pragma once

#include "stowage/config.h"
#include "stowage/context.h"
#include "stowage/logger.h"
#include "stowage/message.h"
#include "stowage/plugin.h"
#include "stowage/sql.h"
#include "stowage/stage.h"
#include "stowage/status.h"
#include "stowage/version.h"
