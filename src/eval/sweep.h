/* The format-vs-quality sweep: quantize one base model into each format,
 * measure every result against the base on the same text windows
 * (perplexity, KL divergence), and keep one row per format. A quantized base
 * (a published Q4_K_M file) is requantized from its decoded weights: the KLD
 * is then against the file as given, the second loss only. All formats are
 * quantized and loaded first, then measured in one pass over the text, so
 * the base runs once per window; the temporary files are removed as soon as
 * they are loaded. */
#ifndef SD_SWEEP_H
#define SD_SWEEP_H

#include "showdown.h"
#include "eval/ppl.h"

/* The formats the sweep tries by default, most bits first. */
#define SD_SWEEP_DEFAULT_TYPES "F16,BF16,Q8_0,Q6_K,Q5_K_M,Q5_1,Q5_0,Q4_K_M,Q4_1,Q4_0,Q3_K_M,Q2_K,MXFP4,NVFP4"

typedef struct {
    char type[16];           /* as asked ("Q4_K_M") */
    int ok;                  /* 0: quantizing or measuring failed, see err */
    char err[SD_ERR_LEN];
    double bpw;              /* bits per weight of the whole file's tensor data */
    int n_matrices;          /* matrices quantization applied to */
    int n_fallback;          /* of those, how many rows did not fit the format's block */
    char formats[128];       /* matrix formats actually written: "Q4_0 x30, Q6_K x1" */
    sd_ppl_result r;         /* against the base */
} sd_sweep_row;

typedef struct {
    const char *base_path;
    const char *text;
    size_t len;
    sd_ppl_params ppl;
    const char *tmp_dir;     /* NULL: $TMPDIR or /tmp */
    /* stage: "quantize" or "measure", before each step of format i of n. */
    void (*progress)(void *ud, int i, int n, const char *type, const char *stage);
    void *progress_ud;
} sd_sweep_params;

/* Runs every format of types (n of them) into rows (n entries). A format that
 * fails leaves its row with ok = 0 and the sweep goes on; -1 only when the
 * base model or the text cannot be used at all. */
int sd_sweep_run(const sd_sweep_params *p, const char *const *types, int n, sd_sweep_row *rows, char *err);

/* The plot: bits per weight on x, mean KLD on a log y axis, one labelled
 * point per successful row (a KLD of exactly 0 sits on the bottom edge and
 * says so). Written to path; 0 or -1 with a message. */
int sd_quality_svg(const char *path, const char *title, const sd_sweep_row *rows, int n, char *err);

#endif
