/* `run --dump-experts FILE`: which experts each token chose in each layer,
 * one line per (token, layer): position, token id, layer, then the expert
 * ids highest routing weight first, tab-separated. */
#include <stdio.h>

#include "cli/cli.h"
#include "model/moe.h"
#include "model/session.h"

int dump_experts(FILE *f, const sd_session *s, const int32_t *toks, int pos0)
{
    const sd_hparams *hp = sd_model_hparams(s->m);
    int n, k = hp->n_expert_used;
    const int32_t *ids = sd_moe_ids(&s->f, &n);
    if (!ids) return 0;
    for (int t = 0; t < n; t++)
        for (int l = 0; l < hp->n_layer; l++) {
            fprintf(f, "%d\t%d\t%d", pos0 + t, (int)toks[t], l);
            for (int j = 0; j < k; j++) fprintf(f, "\t%d", (int)ids[((size_t)t * hp->n_layer + l) * k + j]);
            fputc('\n', f);
        }
    return ferror(f) ? -1 : 0;
}

/* Evaluates the prompt in the session's passes (s->ubatch tokens), dumping each pass's choices. */
int dump_experts_eval(FILE *f, sd_session *s, const int32_t *toks, int n, float *rows, char *err)
{
    int nv = sd_model_hparams(s->m)->n_vocab;
    for (int i = 0; i < n; i += s->ubatch) {
        int c = n - i < s->ubatch ? n - i : s->ubatch;
        if (sd_session_eval(s, toks + i, c, rows ? rows + (size_t)i * nv : NULL, err)) return -1;
        if (dump_experts(f, s, toks + i, i)) {
            snprintf(err, SD_ERR_LEN, "cannot write the experts' dump");
            return -1;
        }
    }
    return 0;
}
