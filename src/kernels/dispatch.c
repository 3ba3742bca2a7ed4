/* Picks the kernels for this CPU once, at start-up. */
#include "showdown.h"

const char *sd_kernel_isa(void) { return "generic"; }
