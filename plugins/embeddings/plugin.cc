// The embeddings plugin: exports EmbeddingsStage to stowaged.
#include "stowage/plugin.h"

#include "embeddings_stage.h"

using stowage::embeddings::EmbeddingsStage;

STOWAGE_STAGE(EmbeddingsStage, "embeddings", "Embeddings", "1.0.0")
