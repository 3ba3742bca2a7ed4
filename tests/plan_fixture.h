/* The planner suites' fixture: the hardware table (loaded per test by
 * .init/.fini) and the preset model shapes with their derived counts. */
#ifndef SD_TESTS_PLAN_FIXTURE_H
#define SD_TESTS_PLAN_FIXTURE_H

#include <criterion/criterion.h>

#include "showdown.h"
#include "plan/plan.h"

static sd_hw_table table;

static inline void load_table(void)
{
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_hw_load("data/hardware.tsv", &table, err), 0, "%s", err);
}

static inline void free_table(void) { sd_hw_free(&table); }

static inline sd_model_ref preset(const char *id)
{
    char err[SD_ERR_LEN];
    sd_model_ref m = {.shape = sd_preset_find(id, err)};
    cr_assert_not_null(m.shape, "%s", err);
    sd_shape_params(m.shape, &m.params);
    return m;
}

/* The recipe quant and the table's row hw_id, both required to exist. */
static inline void find_recipe_hw(const char *quant, const char *hw_id, sd_recipe *r, sd_hw *hw)
{
    char err[SD_ERR_LEN];
    cr_assert_eq(sd_plan_recipe_find(quant, r, err), 0, "%s", err);
    cr_assert_eq(sd_hw_find(&table, hw_id, hw, err), 0, "%s", err);
}

#endif
