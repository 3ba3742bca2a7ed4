/* The cache hierarchy from sysfs-like fixture directories (tests/data/sysfs/),
 * and the two parsers it uses. */
#include <criterion/criterion.h>
#include <string.h>

#include "measure/sysinfo.h"

Test(sysinfo, cache_sizes_parse)
{
    cr_assert_eq(sd_parse_cache_size("48K"), 48u << 10);
    cr_assert_eq(sd_parse_cache_size("49152K\n"), 48u << 20);
    cr_assert_eq(sd_parse_cache_size("32M"), 32u << 20);
    cr_assert_eq(sd_parse_cache_size("4096"), 4096u);
    cr_assert_eq(sd_parse_cache_size("lots"), 0);
    cr_assert_eq(sd_parse_cache_size(""), 0);
    cr_assert_eq(sd_parse_cache_size("12Q"), 0);
    cr_assert_eq(sd_parse_cache_size("0K"), 0);
    cr_assert_eq(sd_parse_cache_size("99999999999999G"), 0, "absurd sizes are malformed, not wrapped");
}

Test(sysinfo, cpu_lists_count)
{
    cr_assert_eq(sd_parse_cpu_list("0"), 1);
    cr_assert_eq(sd_parse_cpu_list("0-1\n"), 2);
    cr_assert_eq(sd_parse_cpu_list("0-3,8-11"), 8);
    cr_assert_eq(sd_parse_cpu_list("0,8"), 2);
    cr_assert_eq(sd_parse_cpu_list(""), 0);
    cr_assert_eq(sd_parse_cpu_list("3-1"), 0);
    cr_assert_eq(sd_parse_cpu_list("0-"), 0);
    cr_assert_eq(sd_parse_cpu_list("0,,1"), 0);
}

Test(sysinfo, an_intel_vm)
{
    sd_cache_info c;
    cr_assert_eq(sd_cache_info_read("tests/data/sysfs/xeon-2vcpu", &c), 0);
    cr_assert_eq(c.n_cpus, 2);
    cr_assert_eq(c.l1d_bytes, 48u << 10, "the instruction cache is not the L1d");
    cr_assert_eq(c.l2_bytes, 1280u << 10);
    cr_assert_eq(c.l2_shared_cpus, 1);
    cr_assert_eq(c.llc_bytes, 48u << 20);
    cr_assert_eq(c.llc_shared_cpus, 2);
    cr_assert_eq(c.llc_level, 3);
    char buf[160];
    cr_assert_str_eq(sd_cache_info_str(&c, buf, sizeof buf), "L1d 48 KiB, L2 1.25 MiB per CPU, L3 48 MiB per 2 CPUs");
}

Test(sysinfo, smt_and_two_llcs)
{
    sd_cache_info c;
    cr_assert_eq(sd_cache_info_read("tests/data/sysfs/epyc-2ccx", &c), 0);
    cr_assert_eq(c.n_cpus, 16);
    cr_assert_eq(c.l2_bytes, 512u << 10);
    cr_assert_eq(c.l2_shared_cpus, 2);
    cr_assert_eq(c.llc_bytes, 16u << 20);
    cr_assert_eq(c.llc_shared_cpus, 8);
}

Test(sysinfo, an_l2_as_the_last_level)
{
    sd_cache_info c;
    cr_assert_eq(sd_cache_info_read("tests/data/sysfs/arm-l2", &c), 0);
    cr_assert_eq(c.llc_level, 2);
    cr_assert_eq(c.llc_bytes, 4u << 20);
    cr_assert_eq(c.llc_shared_cpus, 4);
    char buf[160];
    cr_assert_str_eq(sd_cache_info_str(&c, buf, sizeof buf), "L1d 64 KiB, L2 4 MiB per 4 CPUs");
}

Test(sysinfo, a_malformed_level_is_as_if_absent)
{
    sd_cache_info c;
    cr_assert_eq(sd_cache_info_read("tests/data/sysfs/bad-l3", &c), 0);
    cr_assert_eq(c.llc_level, 2);
    cr_assert_eq(c.llc_bytes, 1280u << 10);
}

Test(sysinfo, no_caches_is_unknown)
{
    sd_cache_info c;
    cr_assert_eq(sd_cache_info_read("tests/data/sysfs/no-cache", &c), -1);
    cr_assert_eq(c.llc_bytes, 0);
    cr_assert_eq(c.n_cpus, 1);
    cr_assert_eq(sd_cache_info_read("tests/data/sysfs/does-not-exist", &c), -1);
    char buf[32];
    cr_assert_str_eq(sd_cache_info_str(&c, buf, sizeof buf), "unknown");
}
