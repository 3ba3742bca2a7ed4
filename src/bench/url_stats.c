/* The metrics of vLLM's `bench serve` (benchmarks/serve.py, calculate_metrics):
 *   TTFT  request sent -> first content chunk
 *   TPOT  (E2E - TTFT) / (output tokens - 1), requests with more than one token
 *   ITL   every gap between content chunks, all requests pooled
 *   E2E   request sent -> stream over
 *   throughputs over the run's wall time; goodput: requests/s meeting every
 *   SLO (a one-token request's TPOT counts as 0, as there).
 * Percentiles are numpy's default (linear interpolation). Empty -> NAN
 * (JSON null), never 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/url.h"

double sd_percentile_sorted(const double *x, int n, double pct)
{
    if (n <= 0) return NAN;
    double pos = pct / 100.0 * (n - 1);
    int lo = (int)floor(pos);
    if (lo >= n - 1) return x[n - 1];
    double f = pos - lo;
    return x[lo] + (x[lo + 1] - x[lo]) * f;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void sd_url_dist_of(double *x, int n, sd_url_dist *d)
{
    if (n <= 0) { d->mean = d->median = d->std = d->p90 = d->p99 = NAN; return; }
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += x[i];
    d->mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - d->mean) * (x[i] - d->mean);
    d->std = sqrt(ss / n);   /* numpy.std: population */
    d->median = sd_percentile_sorted(x, n, 50);
    d->p90 = sd_percentile_sorted(x, n, 90);
    d->p99 = sd_percentile_sorted(x, n, 99);
}

static void add_reason(sd_url_metrics *m, const char *why)
{
    if (!m->first_reason[0]) snprintf(m->first_reason, sizeof m->first_reason, "%s", why);
    for (int i = 0; i < m->n_reasons; i++)
        if (!strcmp(m->reasons[i], why)) { m->reason_count[i]++; return; }
    int i = m->n_reasons;
    if (i < SD_URL_MAX_REASONS - 1) {
        snprintf(m->reasons[i], sizeof m->reasons[i], "%s", why);
        m->n_reasons++;
    } else {   /* the last slot collects the rest */
        i = SD_URL_MAX_REASONS - 1;
        snprintf(m->reasons[i], sizeof m->reasons[i], "other reasons");
        m->n_reasons = SD_URL_MAX_REASONS;
    }
    m->reason_count[i]++;
}

int sd_url_metrics_compute(const sd_url_result *r, int n, const sd_url_run_info *info, const sd_url_slo *slo,
                           sd_url_metrics *m, char *err)
{
    int n_itl = 0;
    for (int i = 0; i < n; i++)
        if (r[i].ok) n_itl += r[i].n_itl;
    double *ttft = malloc(((size_t)n + 1) * sizeof *ttft), *tpot = malloc(((size_t)n + 1) * sizeof *tpot);
    double *e2el = malloc(((size_t)n + 1) * sizeof *e2el), *itl = malloc(((size_t)n_itl + 1) * sizeof *itl);
    if (!ttft || !tpot || !e2el || !itl) {
        free(ttft); free(tpot); free(e2el); free(itl);
        snprintf(err, SD_ERR_LEN, "out of memory computing metrics");
        return -1;
    }
    m->completed = m->failed = 0;
    m->total_input_tokens = m->total_output_tokens = 0;
    m->n_reasons = 0;
    m->first_reason[0] = 0;
    memset(m->reason_count, 0, sizeof m->reason_count);
    int n_tpot = 0, good = 0, k = 0, n_pt = 0;
    double sum_prompt_ms = 0, sum_ms_per_tok = 0;
    m->server_timed = 0;
    m->server_output_tokens = 0;
    for (int i = 0; i < n; i++) {
        if (!r[i].ok) { m->failed++; add_reason(m, r[i].reason); continue; }
        int c = m->completed++;
        m->total_input_tokens += r[i].prompt_tokens;
        m->total_output_tokens += r[i].output_tokens;
        ttft[c] = r[i].ttft_ms;
        e2el[c] = r[i].e2el_ms;
        double tp = 0;
        if (r[i].output_tokens > 1) tpot[n_tpot++] = tp = (r[i].e2el_ms - r[i].ttft_ms) / (r[i].output_tokens - 1);
        for (int j = 0; j < r[i].n_itl; j++) itl[k++] = r[i].itl_ms[j];
        if (r[i].has_timings) {
            m->server_timed++;
            m->server_output_tokens += r[i].srv_predicted_n;
            sum_prompt_ms += r[i].srv_prompt_ms;
            if (r[i].srv_predicted_n > 0) { sum_ms_per_tok += r[i].srv_predicted_ms / r[i].srv_predicted_n; n_pt++; }
        }
        if (slo && !(r[i].ttft_ms > slo->ttft_ms) && !(tp > slo->tpot_ms) && !(r[i].e2el_ms > slo->e2el_ms)) good++;
    }
    double dur = info->duration_s > 0 ? info->duration_s : NAN;
    m->num_prompts = n;
    m->duration_s = info->duration_s;
    m->peak_concurrency = info->peak_concurrency;
    m->request_throughput = m->completed / dur;
    m->output_throughput = m->total_output_tokens / dur;
    m->total_token_throughput = (m->total_input_tokens + m->total_output_tokens) / dur;
    m->goodput = slo ? good / dur : NAN;
    m->server_mean_prompt_ms = m->server_timed ? sum_prompt_ms / m->server_timed : NAN;
    m->server_mean_ms_per_token = n_pt ? sum_ms_per_tok / n_pt : NAN;
    sd_url_dist_of(ttft, m->completed, &m->ttft);
    sd_url_dist_of(tpot, n_tpot, &m->tpot);
    sd_url_dist_of(itl, k, &m->itl);
    sd_url_dist_of(e2el, m->completed, &m->e2el);
    free(ttft); free(tpot); free(e2el); free(itl);
    return 0;
}

int sd_url_slo_parse(const char *s, sd_url_slo *slo, char *err)
{
    slo->ttft_ms = slo->tpot_ms = slo->e2el_ms = NAN;
    const char *p = s;
    int any = 0;
    while (*p) {
        const char *colon = strchr(p, ':');
        if (!colon) break;
        size_t kl = (size_t)(colon - p);
        char *end;
        double v = strtod(colon + 1, &end);
        if (end == colon + 1 || (*end && *end != ',') || !(v >= 0) || !isfinite(v)) break;
        double *dst = kl == 4 && !strncmp(p, "ttft", 4) ? &slo->ttft_ms
                    : kl == 4 && !strncmp(p, "tpot", 4) ? &slo->tpot_ms
                    : kl == 4 && !strncmp(p, "e2el", 4) ? &slo->e2el_ms : NULL;
        if (!dst) break;
        *dst = v;
        any = 1;
        p = *end ? end + 1 : end;
        if (!*p) return 0;
    }
    (void)any;
    snprintf(err, SD_ERR_LEN, "--goodput: expected KEY:MS[,KEY:MS...] with KEY ttft, tpot or e2el, got '%.200s'", s);
    return -1;
}
