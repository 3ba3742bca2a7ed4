/* The model side of the GPU boundary: which layers run on which device
 * (decided once in sd_model_offload), and the hooks the forward pass and
 * the session call. */
#ifndef SD_OFFLOAD_H
#define SD_OFFLOAD_H

#include "model/session.h"

/* Runs the run of GPU layers that starts at layer il for n tokens (and the
 * output head when the run reaches it). Returns the index of the next layer
 * to run on the CPU: il itself when layer il is on the CPU, n_layer when
 * the run ended the layers, n_layer + 1 when the logits are done too (also
 * after a failure, recorded in s->gpu_err). */
int sd_offload_run(sd_session *s, int il, int n, float *logits_out);
int sd_offload_session_new(sd_session *s, char *err);
void sd_offload_session_free(sd_session *s);
void sd_offload_free(sd_model *m);

#endif
