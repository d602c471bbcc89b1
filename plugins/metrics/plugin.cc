// The metrics stage's plugin library.
#include "metrics_stage.h"

STOWAGE_STAGE(stowage::metrics::MetricsStage, "metrics", "UsageMetrics", "1.0.0")
