/* Repacking at the first forward pass (model/model_pack.c) and experts at
 * their first use (model/moe_pack.c): a load copies nothing, the first pass
 * leaves every packable matrix packed, and sessions racing through the
 * first pass of a shared model get the logits of a model packed up front. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "showdown.h"
#include "kernels/dispatch.h"
#include "kernels/pack.h"
#include "model/model.h"
#include "model/moe.h"
#include "common.h"

static int packable(const sd_weight *w)
{
    return w->rows > 0 && w->rows % 16 == 0 && sd_kernel_packed(w->type) != NULL;
}

/* Counts the dense matrices that are packed and those that could be. */
static void count_dense(const sd_model *m, int *packed, int *can)
{
    *packed = *can = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const sd_weight *lw[] = {SD_LAYER_MATRICES(&m->layers[il])};
        for (int i = 0; i < SD_LAYER_N_MATRICES; i++) {
            *can += packable(lw[i]);
            *packed += lw[i]->packed != NULL;
        }
    }
    *can += packable(&m->output);
    *packed += m->output.packed != NULL;
}

Test(model_pack, load_copies_nothing_first_pass_packs)
{
    if (!sd_pack_enabled()) cr_skip_test("SHOWDOWN_REPACK=0");
    char p[512], err[SD_ERR_LEN];
    sd_model *m;
    cr_assert_eq(sd_model_load(shared_path(p, sizeof p, "models/tiny-q4_0.gguf"), &m, err), 0, "%s", err);
    int packed, can;
    count_dense(m, &packed, &can);
    if (!can) {
        sd_model_free(m);
        cr_skip_test("no packed Q4_0 kernel on this CPU");
    }
    cr_expect_eq(packed, 0, "%d matrices packed at load", packed);
    sd_session_params sp = {64, 2, SD_KV_F32};
    sd_session *s;
    cr_assert_eq(sd_session_new(m, &sp, &s, err), 0, "%s", err);
    int32_t tok[2] = {1, 2};
    cr_assert_eq(sd_session_eval(s, tok, 2, NULL, err), 0, "%s", err);
    count_dense(m, &packed, &can);
    cr_expect_eq(packed, can, "after the first pass %d of %d packable matrices packed", packed, can);
    cr_expect_eq(sd_model_prepare(m, 2), 0, "a second prepare packed again");
    sd_session_free(s);
    sd_model_free(m);
}

#define RACERS 4
#define PROMPT 8

typedef struct {
    sd_model *m;
    float *logits;   /* PROMPT rows */
    int rc;
    char err[SD_ERR_LEN];
} racer;

static const int32_t prompt[PROMPT] = {1, 17, 5, 200, 33, 2, 90, 64};

static void *race(void *arg)
{
    racer *r = arg;
    sd_session_params sp = {64, 1, SD_KV_F32};
    sd_session *s;
    r->rc = sd_session_new(r->m, &sp, &s, r->err);
    if (r->rc) return NULL;
    /* one token at a time: decode products, with experts packed as tokens first reach them */
    int nv = sd_model_hparams(r->m)->n_vocab;
    for (int i = 0; i < PROMPT && !r->rc; i++) r->rc = sd_session_eval(s, &prompt[i], 1, r->logits + (size_t)i * nv, r->err);
    sd_session_free(s);
    return NULL;
}

static int experts_ready(const sd_model *m)
{
    int n = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const sd_moe *moe = m->layers[il].moe;
        if (moe && moe->ready)
            for (int e = 0; e < moe->n_expert; e++) n += atomic_load(&moe->ready[e]) != 0;
    }
    return n;
}

/* Sessions of one model racing through its first pass (dense packing under
 * the model's lock, experts under each layer's) agree bit for bit with a
 * model packed up front: every product of every session ran on the same
 * (packed) weights. */
Test(model_pack, racing_first_passes_agree_with_packed_up_front)
{
    char p[512], err[SD_ERR_LEN];
    shared_path(p, sizeof p, "models/moe-qwen3moe-q4_0.gguf");
    sd_model *solo, *shared;
    cr_assert_eq(sd_model_load(p, &solo, err), 0, "%s", err);
    cr_assert_eq(sd_model_load(p, &shared, err), 0, "%s", err);
    cr_assert_eq(experts_ready(shared), 0, "experts packed at load");
    int nv = sd_model_hparams(solo)->n_vocab;
    /* the truth: packed before any pass (dense; experts as the solo pass reaches them) */
    sd_model_prepare(solo, 1);
    racer want = {solo, malloc((size_t)PROMPT * nv * sizeof(float)), 0, ""};
    race(&want);
    cr_assert_eq(want.rc, 0, "%s", want.err);
    racer r[RACERS];
    pthread_t th[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer){shared, malloc((size_t)PROMPT * nv * sizeof(float)), 0, ""};
        cr_assert_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < RACERS; i++) {
        cr_assert_eq(r[i].rc, 0, "%s", r[i].err);
        cr_expect_eq(memcmp(r[i].logits, want.logits, (size_t)PROMPT * nv * sizeof(float)), 0,
                     "racer %d's logits differ from the model packed up front", i);
        free(r[i].logits);
    }
    if (sd_pack_enabled() && sd_kernel_packed(shared->layers[0].moe->gate[0].type))
        cr_expect_gt(experts_ready(shared), 0, "no expert marked packed after the passes");
    cr_expect_eq(experts_ready(shared), experts_ready(solo), "the same experts packed");
    free(want.logits);
    sd_model_free(solo);
    sd_model_free(shared);
}
