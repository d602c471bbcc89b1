// The mapping stage's plugin library.
#include "mapping_stage.h"

STOWAGE_STAGE(stowage::mapping::MappingStage, "mapping", "CacheMapping", "1.0.0")
