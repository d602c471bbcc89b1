// Everything a stage author needs: include this one header.
#pragma once

#include "stowage/config.h"
#include "stowage/context.h"
#include "stowage/logger.h"
#include "stowage/message.h"
#include "stowage/message_json.h"
#include "stowage/plugin.h"
#include "stowage/sql.h"
#include "stowage/sql_migrations.h"
#include "stowage/stage.h"
#include "stowage/status.h"
#include "stowage/version.h"
