/* The "wall" plot: predicted decode tokens/s against weights size, one curve
 * per device, markers at the formats asked for. */
#ifndef SD_PLAN_SVG_H
#define SD_PLAN_SVG_H

#include "plan/plan.h"

/* hosts[i]: host of hws[i] or NULL. Writes an SVG file; -1 with err on failure. */
int sd_plan_svg(const char *path, const sd_model_ref *m, const sd_hw *hws, const sd_hw *const *hosts, int nh,
                const sd_recipe *marks, int nm, const sd_plan_opts *o, char *err);

#endif
