/* The reference logits file (../shared/reference/README.md): prompt tokens,
 * generated tokens, one logits row per consumed token. */
#ifndef SD_LOGITS_FILE_H
#define SD_LOGITS_FILE_H

#include <stdint.h>

typedef struct {
    uint32_t n_vocab, n_prompt, n_gen;
    int32_t *prompt, *gen;
    float *logits;   /* (n_prompt + n_gen) x n_vocab */
} sd_logits_file;

/* Written to a temporary name and renamed: never left half-written. */
int sd_logits_file_write(const char *path, int n_vocab, const int32_t *prompt, int n_prompt, const int32_t *gen,
                         int n_gen, const float *logits, char *err);
int sd_logits_file_read(const char *path, sd_logits_file *out, char *err);
void sd_logits_file_free(sd_logits_file *f);
/* ||a - b|| / ||b|| over n values. */
double sd_rel_l2(const float *a, const float *b, int64_t n);

#endif
