// The postgres plugin: exports PostgresStage to stowaged.
#include "stowage/plugin.h"

#include "postgres_stage.h"

using stowage::postgres::PostgresStage;

STOWAGE_STAGE(PostgresStage, "postgres", "PostgreSQL", "1.0.0")
