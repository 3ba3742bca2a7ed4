/* The Vulkan backend's failures and placement side effects, on whatever
 * device the loader finds (lavapipe here): a lost device or a failed device
 * allocation mid-run (injected with SHOWDOWN_VK_FAIL, vk_core.c) ends run
 * and bench with one error line and a non-zero status, never a crash or
 * wrong text; an -ngl that does not fit is refused before anything is
 * allocated; a GPU layer's KV cache is not also allocated on the CPU; serve
 * names the layers it runs on the GPU. Skipped, saying why, without a device. */
#include <criterion/criterion.h>
#include <math.h>
#include <sys/wait.h>

#include "showdown.h"
#include "gpu/backend.h"
#include "model/kv_cache.h"
#include "model/session.h"
#include "common.h"
#include "serve_child.h"

static void need_device(void)
{
    sd_gpu_device_info info[4];
    char err[SD_ERR_LEN] = "";
    if (sd_gpu_vulkan.list(info, 4, err) == 0) cr_skip_test("no Vulkan device: %s", err);
}

/* Runs `showdown ARGS` with ENV; stdout returned, stderr in err_out, *rc
 * the exit status (-1: killed by a signal). */
static char *run_env(const char *env, const char *args, char *err_out, size_t n, int *rc)
{
    char *e, *o = run_showdown(env, args, &e, rc);
    cr_assert(o && e);
    snprintf(err_out, n, "%s", e);
    free(e);
    return o;
}

static int count_lines(const char *s, const char *prefix)
{
    int c = 0;
    for (const char *p = s; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, strlen(prefix))) c++;
    return c;
}

static const char *tiny(char *buf, size_t n) { return shared_path(buf, n, "models/tiny-f32.gguf"); }

/* A step lost mid-generation: the tokens printed before it are the CPU's,
 * then one error line and status 1. */
Test(gpu_faults, lost_device_mid_run_is_one_error)
{
    need_device();
    char mp[512], args[1024], e1[4096], e2[4096];
    int rc;
    snprintf(args, sizeof args, "run -m %s -p 'Once upon a time' -n 8 --temp 0 -t 2", tiny(mp, sizeof mp));
    char *cpu = run_env("", args, e1, sizeof e1, &rc);
    cr_assert_eq(rc, 0, "%s", e1);
    strcat(args, " -ngl 99");
    /* step 1 is the prompt, steps 2.. one token each */
    char *gpu = run_env("SHOWDOWN_VK_FAIL=submit:4", args, e2, sizeof e2, &rc);
    cr_expect_eq(rc, 1, "%s", e2);
    cr_expect_eq(count_lines(e2, "error: "), 1, "%s", e2);
    cr_expect(strstr(e2, "error: vulkan: ") && strstr(e2, "device lost"), "%s", e2);
    cr_expect(strlen(gpu) > 0 && !strncmp(cpu, gpu, strlen(gpu)), "text before the loss '%s' is not the CPU's '%s'",
              gpu, cpu);
    free(cpu); free(gpu);
}

/* bench: the row carries the error, the command ends non-zero saying so. */
Test(gpu_faults, lost_device_in_bench_is_a_failed_row)
{
    need_device();
    char mp[512], args[1024], e[4096];
    int rc;
    snprintf(args, sizeof args, "bench -m %s -ngl 99 -p 8 -n 4 -r 1 --warmup 0 -t 1 -o jsonl", tiny(mp, sizeof mp));
    char *out = run_env("SHOWDOWN_VK_FAIL=submit:2", args, e, sizeof e, &rc);
    cr_expect_eq(rc, 1, "%s", e);
    /* bench says each failed row's error and then how many failed */
    int rows = count_lines(out, "{");
    cr_expect_eq(rows, 2, "%s", out);
    cr_expect_eq(count_lines(e, "error: "), rows + 1, "%s", e);
    for (const char *p = out; (p = strstr(p, "\"error\": ")); p++)
        cr_expect(!strncmp(p, "\"error\": \"vulkan: ", strlen("\"error\": \"vulkan: ")) && strstr(p, "device lost"), "%.200s", p);
    cr_expect(strstr(e, "error: 2 of 2 tests failed"), "%s", e);
    free(out);
}

/* The Nth device allocation failing, wherever it lands (weights, KV cache,
 * scratch): one error line naming device memory, or, past the last one, the
 * CPU's text. */
Test(gpu_faults, failed_allocation_anywhere_is_one_error)
{
    need_device();
    char mp[512], args[1024], e1[4096], e2[4096], env[64];
    int rc, failed = 0;
    snprintf(args, sizeof args, "run -m %s -p 'Once upon a time' -n 4 --temp 0 -t 2", tiny(mp, sizeof mp));
    char *cpu = run_env("", args, e1, sizeof e1, &rc);
    cr_assert_eq(rc, 0, "%s", e1);
    strcat(args, " -ngl 99");
    /* 1: the model's first buffer; 9: inside layer 0's weights; 30: past
     * both layers (KV cache or scratch); 500: past every allocation */
    const int at[] = {1, 9, 30, 500};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        snprintf(env, sizeof env, "SHOWDOWN_VK_FAIL=alloc:%d", at[i]);
        char *gpu = run_env(env, args, e2, sizeof e2, &rc);
        cr_expect(rc == 0 || rc == 1, "%s: status %d: %s", env, rc, e2);
        if (rc == 1) {
            failed++;
            cr_expect_eq(count_lines(e2, "error: "), 1, "%s: %s", env, e2);
            cr_expect(strstr(e2, "out of device memory"), "%s: %s", env, e2);
            cr_expect_str_eq(gpu, "", "%s: printed text before failing", env);
        } else {
            cr_expect_str_eq(gpu, cpu, "%s", env);
        }
        free(gpu);
    }
    cr_expect_eq(failed, 3, "allocations 1, 9 and 30 fail, 500 is past the last");
    free(cpu);
}

/* An -ngl that cannot fit: refused naming bytes needed and free before any
 * device allocation (the injected failure of the first one is never hit). */
Test(gpu_faults, too_large_ngl_refused_before_any_allocation)
{
    need_device();
    sd_gpu_device_info info[4];
    char err[SD_ERR_LEN], mp[512], args[1024], e[4096];
    cr_assert(sd_gpu_vulkan.list(info, 4, err) > 0);
    /* 2 layers of F32 keys and values at 4M positions: 8 GiB */
    if (info[0].mem_free > (6ull << 30)) cr_skip_test("device has %llu bytes free", (unsigned long long)info[0].mem_free);
    int rc;
    snprintf(args, sizeof args, "run -m %s -p hi -n 2 -c 4194304 -ctk f32 -ngl 99", tiny(mp, sizeof mp));
    char *out = run_env("SHOWDOWN_VK_FAIL=alloc:1", args, e, sizeof e, &rc);
    cr_expect_eq(rc, 1, "%s", e);
    cr_expect_eq(count_lines(e, "error: "), 1, "%s", e);
    cr_expect(strstr(e, " need ") && strstr(e, " bytes") && strstr(e, " free") && !strstr(e, "out of device memory"),
              "%s", e);
    cr_expect_str_eq(out, "");
    free(out);
}

/* A layer on the GPU keeps its keys and values there only: the CPU pool
 * holds the CPU layers (half of tiny-f32's two with -ngl 1, none with all). */
Test(gpu_faults, kv_cache_only_on_the_layers_device)
{
    need_device();
    char mp[512], err[SD_ERR_LEN];
    const int ngl[] = {0, 1, 99}, want_layers[] = {2, 1, 0};
    uint64_t full = 0;
    for (int i = 0; i < 3; i++) {
        sd_model *m;
        cr_assert_eq(sd_model_load(tiny(mp, sizeof mp), &m, err), 0, "%s", err);
        if (ngl[i]) {
            sd_offload_params op = {ngl[i], 0, 256, SD_KV_F16, NULL, NULL};
            cr_assert_eq(sd_model_offload(m, &op, err), 0, "%s", err);
        }
        sd_session_params p = {256, 1, SD_KV_F16};
        sd_session *s;
        cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
        cr_expect_eq(s->kv->n_layer, want_layers[i], "-ngl %d: %d layers in the CPU pool", ngl[i], s->kv->n_layer);
        uint64_t b = sd_kv_cache_bytes(m, SD_KV_F16, 256, 1, 64);
        if (i == 0) full = b;
        cr_expect_eq(b, full * (uint64_t)want_layers[i] / 2, "-ngl %d: %llu bytes", ngl[i], (unsigned long long)b);
        int32_t t[3] = {1, 7, 42};
        cr_expect_eq(sd_session_eval(s, t, 3, NULL, err), 0, "%s", err);
        cr_expect(isfinite(sd_session_logits(s)[0]));
        sd_session_free(s);
        sd_model_free(m);
    }
    cr_expect_gt(full, 0);
}

/* serve -ngl runs the layers on the GPU and its ready line says so (the
 * batched steps themselves: tests/test_gpu_serve.c). */
Test(gpu_faults, serve_ready_line_names_the_gpu_layers)
{
    need_device();
    char mp[512];
    const char *argv[] = {showdown_bin(), "serve", "-m", tiny(mp, sizeof mp), "--port", "0", "-np", "1", "-c", "64",
                          "-t", "1", "-ngl", "99", NULL};
    serve_child c = {0};
    int rc = serve_child_start(&c, argv);
    char *log = slurp(c.log);
    cr_expect_eq(rc, 0, "%s", log ? log : "");
    cr_expect(log && strstr(log, "layers 0-1 on the GPU (vulkan)") && !strstr(log, "runs on the CPU"), "%s",
              log ? log : "");
    free(log);
    serve_child_kill(&c);
}
