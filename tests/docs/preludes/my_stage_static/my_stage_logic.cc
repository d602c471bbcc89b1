// The static library of docs/writing-a-stage.md's my_stage_static project:
// the doc keeps the class in its header, so this file only compiles it.
#include "my_stage.h"
