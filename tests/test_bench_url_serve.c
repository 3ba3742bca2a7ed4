/* showdown bench --url against the real `showdown serve` ($SHOWDOWN_BIN,
 * tiny-q8_0 from ../shared/models, an ephemeral loopback port): a concurrency
 * sweep and a rate run, whose counts and token totals must equal what the
 * server says of itself in /metrics and in each response's "timings".
 * Skipped, saying so, when the binary has no serve command. Bounded: a tiny
 * model, 8 requests of 8 tokens per point. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "showdown.h"
#include "common.h"
#include "serve_child.h"

static serve_child sv;

static void sv_kill(void) { serve_child_kill(&sv); }

TestSuite(bench_url_serve, .fini = sv_kill, .timeout = 180);

static int has_serve(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s serve --help >/dev/null 2>&1", showdown_bin());
    return system(cmd) == 0;
}

/* The server on tiny-q8_0; sv.url becomes its API base (".../v1"). */
static void sv_start(void)
{
    char model[512];
    shared_path(model, sizeof model, "models/tiny-q8_0.gguf");
    const char *argv[] = {showdown_bin(), "serve", "-m", model, "--port", "0", "-t", "1", "-np", "4", "-c", "2048", "--metrics", NULL};
    int r = serve_child_start(&sv, argv);
    cr_assert_neq(r, -1, "showdown serve exited before it was ready");
    cr_assert_eq(r, 0, "showdown serve printed no URL in 60 s");
    size_t k = strlen(sv.url);
    while (k && sv.url[k - 1] == '/') sv.url[--k] = 0;
    if (!(k > 3 && !strcmp(sv.url + k - 3, "/v1"))) snprintf(sv.url + k, sizeof sv.url - k, "/v1");
}

/* A counter from /metrics (curl, to keep this independent of our client). */
static double metric(const char *name)
{
    char cmd[400], out[64];
    snprintf(out, sizeof out, "/tmp/sd_bu_metrics_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "curl -s %.*s/metrics > %s", (int)(strlen(sv.url) - 3), sv.url, out);
    cr_assert_eq(system(cmd), 0, "curl /metrics failed");
    char *t = slurp(out), key[128];
    unlink(out);
    cr_assert(t, "cannot read %s", out);
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(t, key);
    double v = p ? atof(p + strlen(key)) : -1;
    free(t);
    cr_assert(v >= 0, "no %s in /metrics", name);
    return v;
}

static json_t *bench(const char *flags)
{
    char cmd[1200], out[64], err[64];
    snprintf(out, sizeof out, "/tmp/sd_bu_out_%d", (int)getpid());
    snprintf(err, sizeof err, "/tmp/sd_bu_err_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s bench --url %s %s -o json >%s 2>%s", showdown_bin(), sv.url, flags, out, err);
    int st = system(cmd);
    char *o = slurp(out), *e = slurp(err);
    unlink(out);
    unlink(err);
    cr_assert(o && e, "cannot read bench --url's output");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bench --url failed: %s", e);
    json_t *a = json_loads(o, 0, NULL);
    cr_assert(json_is_array(a), "not JSON: %s", o);
    free(o);
    free(e);
    return a;
}

static long long jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

Test(bench_url_serve, sweep_and_rate_run_agree_with_the_servers_metrics)
{
    if (!has_serve()) cr_skip_test("this build has no `showdown serve` (it lands from the serve branches); nothing to measure");
    sv_start();
    double gen0 = metric("showdown_generated_tokens_total"), prompt0 = metric("showdown_prompt_tokens_total");
    double ttft0 = metric("showdown_time_to_first_token_seconds_count");
    json_t *sweep = bench("--concurrency 1,4 --num-prompts 8 --input-len 16 --output-len 8 --ignore-eos --warmup 0");
    json_t *rate = bench("--request-rate 20 --burstiness 1 --num-prompts 8 --input-len 16 --output-len 8 --ignore-eos --warmup 0");
    long long out = 0, in = 0, done = 0;
    json_t *all[3] = {json_array_get(sweep, 0), json_array_get(sweep, 1), json_array_get(rate, 0)};
    for (int i = 0; i < 3; i++) {
        json_t *o = all[i];
        cr_assert_eq(jint(o, "completed"), 8, "point %d: %lld completed, failures %s", i, jint(o, "completed"),
                     json_dumps(json_object_get(o, "failures"), 0));
        cr_assert_eq(jint(o, "failed"), 0);
        cr_assert_eq(jint(o, "total_output_tokens"), 8 * 8, "--ignore-eos: exactly max_tokens each");
        /* the server's own per-request "timings" say the same */
        cr_assert_eq(jint(o, "server_timed_requests"), 8);
        cr_assert_eq(jint(o, "server_output_tokens"), jint(o, "total_output_tokens"));
        /* exactly 16 random tokens by the server's /tokenize, plus the BOS the model adds */
        long long ti = jint(o, "total_input_tokens");
        cr_assert(ti == 8 * 16 || ti == 8 * 17, "input tokens %lld", ti);
        /* the client's clock starts before the server's: TTFT covers its prompt time */
        double ttft = json_real_value(json_object_get(o, "mean_ttft_ms"));
        cr_assert(ttft > 0 && ttft >= json_real_value(json_object_get(o, "server_mean_prompt_ms")),
                  "mean TTFT %.3f ms below the server's own prompt time %.3f ms", ttft,
                  json_real_value(json_object_get(o, "server_mean_prompt_ms")));
        cr_assert(json_real_value(json_object_get(o, "mean_tpot_ms")) > 0);
        out += jint(o, "total_output_tokens");
        in += ti;
        done += jint(o, "completed");
    }
    cr_assert_eq(jint(all[1], "concurrency"), 4);
    cr_assert(jint(all[1], "peak_concurrency") == 4);
    cr_assert(json_real_value(json_object_get(all[2], "request_rate")) == 20);
    /* /tokenize calls do not generate; every generated and prompt token is ours */
    cr_assert_eq((long long)(metric("showdown_generated_tokens_total") - gen0), out);
    cr_assert_eq((long long)(metric("showdown_prompt_tokens_total") - prompt0), in);
    cr_assert_eq((long long)(metric("showdown_time_to_first_token_seconds_count") - ttft0), done);
    json_decref(sweep);
    json_decref(rate);
}
