/* model.h of the fake test model, as the code generator writes it for a real one. */
#ifndef MODEL_H
#define MODEL_H
#include "kiln_runtime.h"
#define KILN_MEMORY_BYTES 768
#define KILN_ARENA_BYTES 128
extern const kiln_model_desc kiln_model;
#endif
