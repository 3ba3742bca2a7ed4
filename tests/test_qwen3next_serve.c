/* qwen3next through `showdown serve` (the real binary on a loopback port,
 * serve_client.h), on a synthesized file: sequences batched together
 * advance their own recurrent states (concurrent greedy completions equal
 * the same requests served alone), a repeated prompt and one extending it
 * resume from the snapshot of the recurrent state at its last full block
 * (cache_n > 0, the same answer as cold), the snapshots' memory stays
 * within one state per slot, and a sequence preempted when the KV pool runs
 * out is recomputed from a zero state (answers unchanged). */
#include "serve_client.h"
#include "qwen3next_derive.h"

static char model[128];

static void fini(void)
{
    server_kill();
    if (model[0]) unlink(model);
}

TestSuite(qwen3next_serve, .fini = fini, .timeout = 300);

static void start(const char *const *args)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    qnext_synth(model, sizeof model, "f32");
    server_try_start(model, args, NULL);
}

Test(qwen3next_serve, batched_sequences_keep_their_own_state)
{
    const char *args[] = {"-c", "1024", "-np", "3", "--metrics", NULL};
    start(args);
    enum { N = 3 };
    /* The first prompt is long enough to fill prefix-cache blocks (16 tokens each). */
    static const char *prompts[N] = {
        "Once upon a time there was a little dog who liked to run in the park with his friends every day",
        "The sun was", "Lily wanted to"};
    char bodies[N][400], *alone[N], *with[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0}", prompts[i],
                 10 + 4 * i);
        alone[i] = completion_text(bodies[i], NULL);
    }
    completions_together(bodies[0], sizeof bodies[0], N, 120, NULL, with);
    for (int i = 0; i < N; i++) {
        cr_expect_str_eq(with[i], alone[i], "request %d alone: '%s', batched with the others: '%s'", i, alone[i], with[i]);
        free(with[i]);
    }
    /* The long prompt once more: resumed from the state kept at its last full block. */
    json_t *o;
    char *again = completion_text(bodies[0], &o);
    long long hit = jint(o, "timings.cache_n");
    cr_expect(hit > 0 && hit % 16 == 0, "the repeated prompt reused %lld tokens", hit);
    cr_expect_str_eq(again, alone[0], "cold '%s', resumed from the state snapshot '%s'", alone[0], again);
    json_decref(o);
    /* A prompt extending it (the next turn of a conversation) resumes too;
     * its answer is compared below with a server that keeps no snapshots. */
    char ext[600], body[700];
    snprintf(ext, sizeof ext, "%s and then they all went home to sleep", prompts[0]);
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":12,\"temperature\":0}", ext);
    long long bytes = metric("showdown_state_snapshot_bytes");
    cr_expect_gt(bytes, 0, "no state snapshot kept");
    char *warm = completion_text(body, &o);
    cr_expect_geq(jint(o, "timings.cache_n"), hit, "the extension reused %lld tokens", jint(o, "timings.cache_n"));
    json_decref(o);
    /* Four snapshots' worth of prompts: never more than one a slot kept. */
    for (int i = 0; i < 4; i++) {
        char b2[700];
        snprintf(b2, sizeof b2, "{\"prompt\":\"%d %s\",\"max_tokens\":1,\"temperature\":0}", i, prompts[0]);
        free(completion_text(b2, NULL));
    }
    cr_expect_eq(metric("showdown_state_snapshot_bytes"), 3 * bytes, "not one snapshot a slot kept (3 slots)");
    server_kill();
    setenv("SHOWDOWN_STATE_SNAPSHOTS", "0", 1);
    server_try_start(model, args, NULL);
    unsetenv("SHOWDOWN_STATE_SNAPSHOTS");
    char *cold = completion_text(body, &o);
    cr_expect_eq(jint(o, "timings.cache_n"), 0, "with no snapshots kept, a prefix was reused");
    cr_expect_eq(metric("showdown_state_snapshot_bytes"), 0);
    cr_expect_str_eq(warm, cold, "the extension cold '%s', resumed '%s'", cold, warm);
    json_decref(o);
    free(again); free(warm); free(cold);
    for (int i = 0; i < N; i++) free(alone[i]);
}

/* -c 96 is 6 blocks; three requests of 4-5 + 40 tokens need 3 each: the
 * pool runs out, the youngest are preempted and recomputed. */
Test(qwen3next_serve, preempted_sequences_recompute_their_state)
{
    const char *args[] = {"-c", "96", "-np", "3", "--metrics", NULL};
    start(args);
    enum { N = 3 };
    static const char *prompts[N] = {"Once upon a time", "The dog", "Lily wanted"};
    char bodies[N][400], *alone[N], *with[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i],
                 "{\"prompt\":\"%s\",\"max_tokens\":40,\"temperature\":0,\"ignore_eos\":true}", prompts[i]);
        alone[i] = completion_text(bodies[i], NULL);
    }
    completions_together(bodies[0], sizeof bodies[0], N, 120, NULL, with);
    for (int i = 0; i < N; i++) {
        cr_expect_str_eq(with[i], alone[i], "request %d alone: '%s', with company: '%s'", i, alone[i], with[i]);
        free(with[i]);
        free(alone[i]);
    }
    cr_expect_gt(metric("showdown_preemptions_total"), 0, "the pool never ran out: nothing was tested");
}
