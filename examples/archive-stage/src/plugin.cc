// The archive stage's plugin library: exports ArchiveStage to the host.
#include "stowage/plugin.h"

#include "archive_stage.h"

STOWAGE_STAGE(archive::ArchiveStage, "archive", "Archive", "1.0.0")
