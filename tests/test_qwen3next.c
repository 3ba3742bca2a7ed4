/* qwen3next against the independent float64 forward pass of
 * qwen3next_derive.h. The recurrence is cheap to derive, so every position
 * is checked, not only the first: one token at a time, one batch, several
 * sequences interleaved in one batch (the server's pass), a session reset,
 * a released and reused sequence slot; a long prompt through the chunked
 * delta rule (chunks of 64 and 16, and token by token); a prefix resumed
 * from a snapshot of the recurrent state, and the snapshots' bound. */
#include <criterion/criterion.h>
#include <math.h>
#include <unistd.h>

#include "showdown.h"
#include "model/arch_qwen3next.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/session.h"
#include "model/moe.h"
#include "model/synth.h"
#include "gguf/gguf_write.h"
#include "qwen3next_derive.h"

/* ---- fixtures ----------------------------------------------------------- */

static const int32_t toks[] = {1, 300, 17, 42, 99, 250, 7, 312, 3, 77, 300, 300, 300, 5, 6, 9, 120, 4, 88, 15};
#define NT ((int)(sizeof toks / sizeof toks[0]))

static double rel_l2(const float *a, const double *b, int n) { return qnext_rel_l2(a, b, n); }

static double *derive_rows(const char *path, int n, int *nv) { return qnext_derive_rows(path, toks, n, nv); }

/* Our session, one token at a time or one batch, against the derivation. */
static void check_session(const char *type, int batch, sd_kv_type kv, double tol, double route_gap)
{
    char path[128], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, type);
    int nv;
    double *want = derive_rows(path, NT, &nv);
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    sd_session_params p = {64, 2, kv};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    float *rows = malloc((size_t)NT * nv * sizeof *rows);
    const sd_hparams *hp = sd_model_hparams(m);
    int nl = hp->n_layer, k = hp->n_expert_used;
    int32_t *got = malloc((size_t)NT * nl * k * sizeof *got);
    if (batch) {
        cr_assert_eq(sd_session_eval(s, toks, NT, rows, err), 0, "%s", err);
        int nt;
        const int32_t *r = sd_moe_ids(&s->f, &nt);
        cr_assert_eq(nt, NT);
        memcpy(got, r, (size_t)NT * nl * k * sizeof *got);
    } else {
        for (int t = 0; t < NT; t++) {
            cr_assert_eq(sd_session_eval(s, &toks[t], 1, rows + (size_t)t * nv, err), 0, "%s", err);
            memcpy(got + (size_t)t * nl * k, sd_moe_ids(&s->f, NULL), (size_t)nl * k * sizeof *got);
        }
    }
    /* The same experts as the derivation's wherever its choice is clear of the next best (as sets). */
    int32_t *ids = malloc((size_t)NT * nl * k * sizeof *ids);
    double *gap = malloc((size_t)NT * nl * sizeof *gap);
    free(qnext_derive_routed(path, toks, NT, &nv, ids, gap));
    int checked = 0;
    for (int i = 0; i < NT * nl; i++) {
        if (gap[i] < route_gap) continue;
        checked++;
        for (int a = 0; a < k; a++) {
            int found = 0;
            for (int b2 = 0; b2 < k; b2++) found |= got[(size_t)i * k + a] == ids[(size_t)i * k + b2];
            cr_expect(found, "%s token %d layer %d: expert %d not among the derivation's (gap %.2e)", type, i / nl,
                      i % nl, got[(size_t)i * k + a], gap[i]);
        }
    }
    cr_log_info("qwen3next %s%s: routing of %d of %d (token, layer) pairs checked (gap >= %g)", type,
                batch ? " batched" : "", checked, NT * nl, route_gap);
    cr_expect_geq(checked, NT * nl * 3 / 4, "too few clear routing choices: %d of %d", checked, NT * nl);
    free(ids); free(gap); free(got);
    double worst = 0, first = rel_l2(rows, want, nv);
    for (int t = 0; t < NT; t++) worst = fmax(worst, rel_l2(rows + (size_t)t * nv, want + (size_t)t * nv, nv));
    cr_log_info("qwen3next %s%s: row 0 %.2e, worst of %d rows %.2e (limit %.0e)", type, batch ? " batched" : "", first,
                NT, worst, tol);
    cr_expect_leq(worst, tol, "%s: worst relative L2 vs the derivation %.3e > %.0e", type, worst, tol);
    /* A reset starts the recurrence over: the same rows again. */
    sd_session_reset(s);
    float *again = malloc((size_t)NT * nv * sizeof *again);
    cr_assert_eq(sd_session_eval(s, toks, NT, again, err), 0, "%s", err);
    double rerun = 0;
    for (int t = 0; t < NT; t++) rerun = fmax(rerun, rel_l2(again + (size_t)t * nv, want + (size_t)t * nv, nv));
    cr_expect_leq(rerun, tol, "after a reset: %.3e", rerun);
    free(again); free(rows); free(want);
    sd_session_free(s);
    sd_model_free(m);
    unlink(path);
}

/* Routing: every choice whose router-logit gap is 1e-4 or more (F32), 0.05
 * or more (8-bit activations) must be the derivation's. */
Test(qwen3next, f32_one_token_at_a_time) { check_session("f32", 0, SD_KV_F32, 1e-5, 1e-4); }
Test(qwen3next, f32_one_batch) { check_session("f32", 1, SD_KV_F32, 1e-5, 1e-4); }
/* Q8_0: the derivation on the dequantized weights, ours with 8-bit activations. */
Test(qwen3next, q8_0_one_batch) { check_session("q8_0", 1, SD_KV_F32, 3e-2, 5e-2); }
Test(qwen3next, q4_0_f16_kv) { check_session("q4_0", 0, SD_KV_F16, 5e-2, 5e-2); }

/* The server's pass: three sequences' tokens interleaved in each batch
 * (positions out of step), each sequence against its own derivation;
 * a slot released and reused starts from a zero state. */
Test(qwen3next, interleaved_sequences_in_one_batch)
{
    char path[128], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, "f32");
    int nv;
    double *want = derive_rows(path, NT, &nv);
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    sd_kv_cache *kv;
    cr_assert_eq(sd_kv_cache_new(m, SD_KV_F32, 3 * 64, 3, 64, &kv, err), 0, "%s", err);
    cr_assert_gt(kv->state_bytes, 0);
    sd_fwd f;
    cr_assert_eq(sd_fwd_init(&f, m, kv, 16, 2, err), 0, "%s", err);
    for (int s = 0; s < 3; s++) cr_assert_eq(sd_kv_seq_grow(kv, s, 64), 0);
    /* Prefix reuse would skip the recurrence: none without a snapshot of the state. */
    cr_expect_eq(sd_kv_seq_reuse_prefix(kv, 0, toks, NT), 0);
    int done[3] = {0, 0, 0};
    const int start[3] = {0, 5, 11};   /* sequence s begins after start[s] rounds */
    float *rows = malloc((size_t)16 * nv * sizeof *rows);
    double worst = 0;
    for (int round = 0; round < 40; round++) {
        int32_t tk[16];
        int pos[16], seq[16], out[16], n = 0;
        for (int s = 0; s < 3; s++) {
            if (round < start[s]) continue;
            int take = 1 + (round + s) % 3;   /* 1..3 tokens of this sequence in this batch */
            for (int i = 0; i < take && done[s] < NT; i++, done[s]++) {
                tk[n] = toks[done[s]];
                pos[n] = done[s];
                seq[n] = s;
                out[n] = n;
                n++;
            }
        }
        if (!n) break;
        sd_batch b = {n, tk, pos, seq, out, n};
        sd_forward_batch(&f, &b, rows);
        for (int i = 0; i < n; i++)
            worst = fmax(worst, rel_l2(rows + (size_t)i * nv, want + (size_t)pos[i] * nv, nv));
    }
    for (int s = 0; s < 3; s++) cr_assert_eq(done[s], NT);
    cr_log_info("qwen3next: 3 interleaved sequences, worst row vs the derivation %.2e", worst);
    cr_expect_leq(worst, 1e-5, "interleaved sequences: %.3e", worst);
    /* Sequence 1 released and started again: its state was zeroed. */
    sd_kv_seq_release(kv, 1);
    const unsigned char *st = kv->seqs[1].state;
    int zero = 1;
    for (size_t i = 0; i < kv->state_bytes; i++) zero &= st[i] == 0;
    cr_expect(zero, "released sequence keeps state");
    cr_assert_eq(sd_kv_seq_grow(kv, 1, 64), 0);
    int32_t tk[4] = {toks[0], toks[1], toks[2], toks[3]};
    int pos[4] = {0, 1, 2, 3}, seq[4] = {1, 1, 1, 1}, out[4] = {0, 1, 2, 3};
    sd_batch b = {4, tk, pos, seq, out, 4};
    sd_forward_batch(&f, &b, rows);
    double again = 0;
    for (int i = 0; i < 4; i++) again = fmax(again, rel_l2(rows + (size_t)i * nv, want + (size_t)i * nv, nv));
    cr_expect_leq(again, 1e-5, "reused slot: %.3e", again);
    free(rows); free(want);
    sd_fwd_free(&f);
    sd_kv_cache_free(kv);
    sd_model_free(m);
    unlink(path);
}

/* The preset is Qwen3-Next-80B-A3B's published config, and the parameter
 * count the shape predicts is the one a written file holds. */
Test(qwen3next, preset_shape_and_parameter_count)
{
    const sd_synth_shape *s = sd_synth_preset("qwen3-next-80b-a3b");
    cr_assert_not_null(s);
    cr_expect(s->n_embd == 2048 && s->n_layer == 48 && s->n_head == 16 && s->n_head_kv == 2 && s->head_dim == 256);
    cr_expect(s->n_expert == 512 && s->n_expert_used == 10 && s->n_ff_exp == 512 && s->n_ff_shexp == 512);
    cr_expect(s->ssm_conv == 4 && s->ssm_state == 128 && s->ssm_groups == 16 && s->ssm_heads == 32);
    cr_expect(s->n_rot == 64 && s->attn_interval == 4 && s->n_vocab == 151936 && !s->tied);
    double b = (double)sd_synth_n_params(s) / 1e9;
    cr_expect(b > 79.3 && b < 80.0, "%.2fB parameters", b);

    char path[128], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, "f32");
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    sd_synth_shape sh = *s;
    sh.n_layer = 4; sh.n_embd = 128; sh.n_head = 2; sh.n_head_kv = 1; sh.head_dim = 64; sh.n_rot = 16;
    sh.n_vocab = 400; sh.n_expert = 8; sh.n_expert_used = 2; sh.n_ff_exp = 64; sh.n_ff_shexp = 64;
    sh.ssm_state = 32; sh.ssm_groups = 2; sh.ssm_heads = 4;
    cr_expect_eq(sd_synth_n_params(&sh), sd_model_n_params(m));
    sd_model_free(m);
    unlink(path);
}

/* The first converters' fused layout: attn_qkv and attn_gate as one ssm_in
 * whose rows run, per key head g, q_g, k_g, then v and z of g's value heads.
 * A copy of the F32 file in that layout gives the same logits. */
static void write_fused(const char *src, const char *dst)
{
    char err[SD_ERR_LEN];
    gguf_file *g;
    cr_assert_eq(gguf_open(src, &g, err), 0, "%s", err);
    uint32_t dk = 0, hk = 0, hv = 0, inner = 0;
    cr_assert_eq(gguf_get_u32(g, "qwen3next.ssm.state_size", &dk, err), 1);
    cr_assert_eq(gguf_get_u32(g, "qwen3next.ssm.group_count", &hk, err), 1);
    cr_assert_eq(gguf_get_u32(g, "qwen3next.ssm.time_step_rank", &hv, err), 1);
    cr_assert_eq(gguf_get_u32(g, "qwen3next.ssm.inner_size", &inner, err), 1);
    size_t kd = (size_t)dk * hk, gv = inner / hk;
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) cr_assert_eq(gguf_writer_copy_kv(w, &g->kv[i]), 0);
    void **data = calloc(g->n_tensors, sizeof *data);
    size_t *bytes = calloc(g->n_tensors, sizeof *bytes);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        char name[96];
        int layer;
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (strstr(name, ".attn_gate.weight")) continue;
        data[i] = (void *)t->data;
        bytes[i] = t->n_bytes;
        int end = -1;
        if (sscanf(name, "blk.%d.attn_qkv.weight%n", &layer, &end) != 1 || end != (int)strlen(name)) {
            cr_assert_eq(gguf_writer_add_tensor(w, name, t->type, (int)t->n_dims, t->ne, err), 0, "%s", err);
            continue;
        }
        cr_assert_eq(t->type, SD_TYPE_F32);
        char gname[96];
        snprintf(gname, sizeof gname, "blk.%d.attn_gate.weight", layer);
        const gguf_tensor *z = gguf_find_tensor(g, gname);
        cr_assert_not_null(z);
        size_t row = (size_t)t->ne[0] * sizeof(float);
        const char *qkv = t->data, *zr = z->data;
        char *o = malloc((t->n_bytes + z->n_bytes));
        data[i] = o;
        bytes[i] = t->n_bytes + z->n_bytes;
        for (size_t h = 0; h < hk; h++) {
            memcpy(o, qkv + h * dk * row, dk * row), o += dk * row;
            memcpy(o, qkv + (kd + h * dk) * row, dk * row), o += dk * row;
            memcpy(o, qkv + (2 * kd + h * gv) * row, gv * row), o += gv * row;
            memcpy(o, zr + h * gv * row, gv * row), o += gv * row;
        }
        snprintf(name, sizeof name, "blk.%d.ssm_in.weight", layer);
        int64_t ne[2] = {t->ne[0], t->ne[1] + z->ne[1]};
        cr_assert_eq(gguf_writer_add_tensor(w, name, t->type, 2, ne, err), 0, "%s", err);
    }
    cr_assert_eq(gguf_writer_begin(w, dst, err), 0, "%s", err);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (!data[i]) continue;
        cr_assert_eq(gguf_writer_write(w, data[i], bytes[i], err), 0, "%s", err);
        if (data[i] != g->tensors[i].data) free(data[i]);
    }
    cr_assert_eq(gguf_writer_finish(w, err), 0, "%s", err);
    gguf_writer_free(w);
    free(data);
    free(bytes);
    gguf_close(g);
}

static float *rows_of(const char *path, int *nv)
{
    char err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    *nv = sd_model_hparams(m)->n_vocab;
    sd_session_params p = {64, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    float *rows = malloc((size_t)NT * *nv * sizeof *rows);
    cr_assert_eq(sd_session_eval(s, toks, NT, rows, err), 0, "%s", err);
    sd_session_free(s);
    sd_model_free(m);
    return rows;
}

Test(qwen3next, fused_ssm_in_layout_computes_the_same)
{
    char path[128], fused[160];
    qnext_synth(path, sizeof path, "f32");
    snprintf(fused, sizeof fused, "%s.fused.gguf", path);
    write_fused(path, fused);
    int nv, nv2;
    float *a = rows_of(path, &nv), *b = rows_of(fused, &nv2);
    cr_assert_eq(nv, nv2);
    double worst = 0;
    for (int i = 0; i < NT; i++) {
        double num = 0, den = 0;
        for (int j = 0; j < nv; j++) {
            double d = (double)a[(size_t)i * nv + j] - b[(size_t)i * nv + j];
            num += d * d;
            den += (double)a[(size_t)i * nv + j] * a[(size_t)i * nv + j];
        }
        worst = fmax(worst, sqrt(num / den));
    }
    cr_log_info("qwen3next fused ssm_in vs attn_qkv + attn_gate: worst relative L2 %.2e", worst);
    cr_expect_leq(worst, 1e-6, "fused layout differs: %.3e", worst);
    free(a); free(b);
    unlink(fused);
    unlink(path);
}

/* ---- chunked prefill and state snapshots -------------------------------- */

#define NL 150   /* crosses chunk boundaries of 64 and 16 */

static void long_prompt(int32_t *t, int n)
{
    unsigned x = 12345u;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        t[i] = 1 + (int32_t)((x >> 8) % 390);
    }
}

/* Every row of one batch of NL tokens, with the delta rule's chunk set to chunk. */
static float *batch_rows(sd_model *m, const int32_t *t, int n, int chunk, int nv)
{
    char err[SD_ERR_LEN];
    m->qnext->chunk = chunk;
    sd_session_params p = {256, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &p, &s, err), 0, "%s", err);
    float *rows = malloc((size_t)n * nv * sizeof *rows);
    cr_assert_eq(sd_session_eval(s, t, n, rows, err), 0, "%s", err);
    sd_session_free(s);
    return rows;
}

Test(qwen3next, chunked_prefill_matches_the_derivation)
{
    char path[128], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, "f32");
    int32_t t[NL];
    long_prompt(t, NL);
    int nv;
    double *want = qnext_derive_rows(path, t, NL, &nv);
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    static const int chunks[] = {64, 16, 1};
    for (int c = 0; c < 3; c++) {
        float *rows = batch_rows(m, t, NL, chunks[c], nv);
        double worst = 0;
        for (int i = 0; i < NL; i++) worst = fmax(worst, rel_l2(rows + (size_t)i * nv, want + (size_t)i * nv, nv));
        cr_log_info("qwen3next: %d tokens in one batch, chunk %d: worst row vs the derivation %.2e", NL, chunks[c],
                    worst);
        cr_expect_leq(worst, 1e-5, "chunk %d: worst relative L2 %.3e", chunks[c], worst);
        free(rows);
    }
    free(want);
    sd_model_free(m);
    unlink(path);
}

/* n tokens of sequence s from position p0 through the pass, in batches of
 * at most 48; the rows of positions >= p0 into rows. */
static void feed(sd_fwd *f, sd_kv_cache *kv, int s, const int32_t *t, int p0, int n, float *rows, int nv)
{
    cr_assert_eq(sd_kv_seq_grow(kv, s, n), 0);
    for (int a = p0; a < n; a += 48) {
        int c = n - a < 48 ? n - a : 48, pos[48], seq[48], out[48];
        for (int i = 0; i < c; i++) pos[i] = a + i, seq[i] = s, out[i] = i;
        sd_batch b = {c, t + a, pos, seq, out, c};
        sd_forward_batch(f, &b, rows + (size_t)(a - p0) * nv);
        sd_kv_seq_publish(kv, s, t, a + c);
    }
}

Test(qwen3next, prefix_resumes_from_a_state_snapshot)
{
    char path[128], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, "f32");
    int32_t t[NL], u[NL];
    long_prompt(t, NL);
    memcpy(u, t, sizeof u);
    for (int i = 100; i < NL; i++) u[i] = 1 + (u[i] * 7) % 390;   /* shares the first 100 tokens */
    int nv;
    double *want = qnext_derive_rows(path, u, NL, &nv);
    sd_model *m;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    sd_kv_cache *kv;
    cr_assert_eq(sd_kv_cache_new(m, SD_KV_F32, 4 * 160, 2, 48, &kv, err), 0, "%s", err);
    cr_expect_eq(kv->snap.cap, 2, "one snapshot a slot by default");
    sd_kv_snap_limit(kv, 1);
    sd_fwd f;
    cr_assert_eq(sd_fwd_init(&f, m, kv, 48, 2, err), 0, "%s", err);
    float *rows = malloc((size_t)NL * nv * sizeof *rows);
    /* The first prompt: 101 tokens, its snapshot at 96 (6 blocks). */
    sd_kv_seq_plan_snapshot(kv, 0, t, 101);
    cr_assert_eq(kv->seqs[0].snap_pos, 96);
    feed(&f, kv, 0, t, 0, 101, rows, nv);
    cr_expect_eq(kv->snap.stores, 1);
    cr_expect_eq(kv->snap.bytes, kv->state_bytes, "%llu bytes kept", (unsigned long long)kv->snap.bytes);
    sd_kv_seq_release(kv, 0);
    /* The second shares 100 tokens: it resumes at 96 and matches its cold rows. */
    cr_assert_eq(sd_kv_seq_reuse_prefix(kv, 1, u, NL), 96);
    cr_expect_eq(kv->snap.hits, 1);
    sd_kv_seq_plan_snapshot(kv, 1, u, NL);
    feed(&f, kv, 1, u, 96, NL, rows, nv);
    double worst = 0;
    for (int i = 96; i < NL; i++)
        worst = fmax(worst, rel_l2(rows + (size_t)(i - 96) * nv, want + (size_t)i * nv, nv));
    cr_log_info("qwen3next: resumed at 96 from a state snapshot, worst row vs the derivation %.2e", worst);
    cr_expect_leq(worst, 1e-5, "resumed from the snapshot: %.3e", worst);
    /* Its own snapshot (at 144) replaced the first: one kept, the bound holds. */
    cr_expect_eq(kv->snap.stores, 2);
    cr_expect_eq(kv->snap.replaced, 1);
    cr_expect_eq(kv->snap.bytes, kv->state_bytes);
    sd_kv_seq_release(kv, 1);
    cr_expect_eq(sd_kv_seq_reuse_prefix(kv, 0, t, 101), 0, "the replaced snapshot was reused");
    sd_kv_seq_release(kv, 0);
    cr_expect_eq(sd_kv_seq_reuse_prefix(kv, 0, u, NL), 144);
    /* Blocks without a snapshot are not reused: a prefix of the second, cut before 144. */
    sd_kv_seq_release(kv, 0);
    cr_expect_eq(sd_kv_seq_reuse_prefix(kv, 0, u, 140), 0);
    /* Two sequences admitted with one prompt: one snapshot is filled, not two. */
    sd_kv_seq_release(kv, 0);
    sd_kv_seq_plan_snapshot(kv, 0, t, 101);
    sd_kv_seq_plan_snapshot(kv, 1, t, 101);
    cr_expect(kv->seqs[0].snap && !kv->seqs[1].snap, "the same prefix armed twice");
    sd_kv_seq_release(kv, 1);
    /* No snapshots kept: no reuse at all. */
    sd_kv_seq_release(kv, 0);
    sd_kv_snap_limit(kv, 0);
    cr_expect_eq(kv->snap.bytes, 0);
    cr_expect_eq(sd_kv_seq_reuse_prefix(kv, 0, u, NL), 0);
    free(rows); free(want);
    sd_fwd_free(&f);
    sd_kv_cache_free(kv);
    sd_model_free(m);
    unlink(path);
}
