/* The model side of the GPU boundary: which layers run on which device
 * (decided once in sd_model_offload), and the hooks the forward pass and
 * the session call. */
#ifndef SD_OFFLOAD_H
#define SD_OFFLOAD_H

#include "model/session.h"

/* Runs the run of GPU layers that starts at layer il for batch b (and the
 * output head when the run reaches it). Returns the index of the next layer
 * to run on the CPU: il itself when layer il is on the CPU (or f has no GPU
 * state: the serving engine's passes run on the CPU), n_layer when the run
 * ended the layers, n_layer + 1 when the logits are done too (also after a
 * failure, recorded in f->gpu_err). The GPU runs one sequence at a time
 * (consecutive positions, logits of a suffix of the batch): a session's. */
int sd_offload_run(sd_fwd *f, const sd_batch *b, int il, float *logits);
int sd_offload_session_new(sd_session *s, char *err);
void sd_offload_session_free(sd_session *s);
void sd_offload_free(sd_model *m);

#endif
