/* Reading and writing the SDRL logits file. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "eval/logits_file.h"

int sd_logits_file_write(const char *path, int n_vocab, const int32_t *prompt, int n_prompt, const int32_t *gen,
                         int n_gen, const float *logits, char *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { snprintf(err, SD_ERR_LEN, "%s: cannot write: %s", path, strerror(errno)); return -1; }
    uint32_t hdr[3] = {(uint32_t)n_vocab, (uint32_t)n_prompt, (uint32_t)n_gen};
    size_t rows = (size_t)n_prompt + (size_t)n_gen;
    int ok = fwrite("SDRL", 1, 4, f) == 4 && fwrite(hdr, 4, 3, f) == 3 &&
             fwrite(prompt, 4, (size_t)n_prompt, f) == (size_t)n_prompt &&
             fwrite(gen, 4, (size_t)n_gen, f) == (size_t)n_gen &&
             fwrite(logits, sizeof(float) * (size_t)n_vocab, rows, f) == rows;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        snprintf(err, SD_ERR_LEN, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

int sd_logits_file_read(const char *path, sd_logits_file *out, char *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, SD_ERR_LEN, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    char magic[4];
    uint32_t hdr[3];
    int rc = -1;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "SDRL", 4) || fread(hdr, 4, 3, f) != 3) {
        snprintf(err, SD_ERR_LEN, "%s: not a logits file", path);
        goto done;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 16, SEEK_SET);
    /* Check the header against the real size by division: multiplying its
     * counts could wrap, and nothing may be allocated from a lie. */
    uint64_t rows = (uint64_t)hdr[1] + hdr[2];
    uint64_t words = size >= 16 ? (uint64_t)(size - 16) / 4 : 0;
    if (hdr[0] == 0 || hdr[0] > (1u << 24)) {   /* the model loader's limit too */
        snprintf(err, SD_ERR_LEN, "%s: vocabulary of %u tokens is absurd", path, hdr[0]);
        goto done;
    }
    if (size < 16 || (size - 16) % 4 || rows > words ||
        (rows && hdr[0] > (words - rows) / rows) || rows * (1 + (uint64_t)hdr[0]) != words) {
        snprintf(err, SD_ERR_LEN, "%s: size %ld does not match its header", path, size);
        goto done;
    }
    out->n_vocab = hdr[0];
    out->n_prompt = hdr[1];
    out->n_gen = hdr[2];
    out->prompt = malloc(4 * (rows ? rows : 1));
    out->logits = malloc(4 * (rows ? rows * hdr[0] : 1));
    if (!out->prompt || !out->logits) { snprintf(err, SD_ERR_LEN, "%s: out of memory", path); goto done; }
    out->gen = out->prompt + hdr[1];
    if (fread(out->prompt, 4, rows, f) != rows || fread(out->logits, 4 * (size_t)hdr[0], rows, f) != rows) {
        snprintf(err, SD_ERR_LEN, "%s: read error", path);
        goto done;
    }
    rc = 0;
done:
    fclose(f);
    if (rc) sd_logits_file_free(out);
    return rc;
}

void sd_logits_file_free(sd_logits_file *f)
{
    free(f->prompt);
    free(f->logits);
    memset(f, 0, sizeof *f);
}

double sd_rel_l2(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
