/* The model side of the GPU boundary: which layers run on which device
 * (decided once in sd_model_offload), and the hooks the forward pass and
 * the session call. */
#ifndef SD_OFFLOAD_H
#define SD_OFFLOAD_H

#include "model/session.h"

/* Runs the run of GPU layers that starts at layer il for batch b (and the
 * output head when the run reaches it). Returns the index of the next layer
 * to run on the CPU: il itself when layer il is on the CPU (or f has no GPU
 * state), n_layer when the run
 * ended the layers, n_layer + 1 when the logits are done too (also after a
 * failure, recorded in f->gpu_err). A session's state runs one sequence
 * (consecutive positions, logits of a suffix of the batch); the engine's
 * (sd_offload_engine_new) any batch sd_forward_batch takes. */
int sd_offload_run(sd_fwd *f, const sd_batch *b, int il, float *logits);
int sd_offload_session_new(sd_session *s, char *err);
void sd_offload_session_free(sd_session *s);
/* The serving engine's GPU state on f (0 and nothing done without GPU
 * layers): a device pool of f->kv's blocks for the GPU layers, so a block id
 * names the same positions on both sides and the prefix cache, preemption
 * and release need nothing more; steps of up to f->max_tok tokens of any
 * sequences, logits for up to n_out rows. */
int sd_offload_engine_new(sd_fwd *f, int n_out, char *err);
void sd_offload_engine_free(sd_fwd *f);
void sd_offload_free(sd_model *m);

#endif
