/* Hostile qwen3next files: a synthesized qwen3next model with one header
 * field or tensor name patched in place must be refused with one line
 * naming the file and the key (or the tensor whose shape disagrees). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "showdown.h"
#include "gguf/gguf.h"
#include "qwen3next_derive.h"
#include "gguf_patch.h"

static void load_model(void)
{
    char path[128];
    qnext_synth(path, sizeof path, "f32");
    buf = read_all(path, &buf_len);
    cr_assert_not_null(buf, "cannot read %s", path);
    unlink(path);
}

static void expect_refused(const char *needle) { expect_refused_as("qnext", needle); }

/* The fixture itself loads: the refusals below come from the patches. */
Test(qwen3next_bad, fixture_loads)
{
    char path[128], err[SD_ERR_LEN];
    qnext_synth(path, sizeof path, "f32");
    sd_model *m = NULL;
    cr_assert_eq(sd_model_load(path, &m, err), 0, "%s", err);
    cr_expect_eq(sd_model_hparams(m)->arch, SD_ARCH_QWEN3NEXT);
    sd_model_free(m);
    unlink(path);
}

Test(qwen3next_bad, missing_conv_kernel)
{
    load_model();
    size_t at = find_str("qwen3next.ssm.conv_kernel");
    buf[at - 1] = 'X';
    expect_refused("missing hyper-parameter qwen3next.ssm.conv_kernel");
}

Test(qwen3next_bad, zero_conv_kernel)
{
    load_model();
    set_u32("qwen3next.ssm.conv_kernel", 0);
    expect_refused("qwen3next.ssm.conv_kernel = 0 is out of range");
}

Test(qwen3next_bad, zero_value_heads)
{
    load_model();
    set_u32("qwen3next.ssm.time_step_rank", 0);
    expect_refused("qwen3next.ssm.time_step_rank = 0 is out of range");
}

Test(qwen3next_bad, inner_size_not_whole_heads)
{
    load_model();
    set_u32("qwen3next.ssm.inner_size", 130);
    expect_refused("qwen3next.ssm.inner_size = 130 is not a multiple of ssm.time_step_rank = 4");
}

Test(qwen3next_bad, value_heads_not_multiple_of_key_heads)
{
    load_model();
    set_u32("qwen3next.ssm.time_step_rank", 3);
    set_u32("qwen3next.ssm.inner_size", 96);
    expect_refused("qwen3next.ssm.time_step_rank = 3 is not a multiple of ssm.group_count = 2");
}

Test(qwen3next_bad, value_head_size_differs)
{
    load_model();
    set_u32("qwen3next.ssm.inner_size", 256);
    expect_refused("value head size) differs from ssm.state_size = 32");
}

Test(qwen3next_bad, state_size_disagrees_with_tensors)
{
    load_model();
    set_u32("qwen3next.ssm.state_size", 16);
    set_u32("qwen3next.ssm.inner_size", 64);
    expect_refused("tensor blk.0.attn_qkv.weight has shape [128, 256], expected [128, 128]");
}

Test(qwen3next_bad, conv_taps_disagree_with_tensor)
{
    load_model();
    set_u32("qwen3next.ssm.conv_kernel", 3);
    expect_refused("tensor blk.0.ssm_conv1d.weight has shape [4, 256], expected [3, 256]");
}

Test(qwen3next_bad, zero_attention_interval)
{
    load_model();
    set_u32("qwen3next.full_attention_interval", 0);
    expect_refused("qwen3next.full_attention_interval = 0 is out of range");
}

/* Every layer recurrent: layer 3's attention tensors do not fit. */
Test(qwen3next_bad, attention_interval_disagrees_with_tensors)
{
    load_model();
    set_u32("qwen3next.full_attention_interval", 8);
    expect_refused("missing tensor blk.3.attn_qkv.weight");
}

Test(qwen3next_bad, rope_dims_beyond_head)
{
    load_model();
    set_u32("qwen3next.rope.dimension_count", 66);
    expect_refused("qwen3next.rope.dimension_count = 66 is out of range (2..64)");
}

Test(qwen3next_bad, shared_expert_size_disagrees)
{
    load_model();
    set_u32("qwen3next.expert_shared_feed_forward_length", 32);
    expect_refused("tensor blk.0.ffn_gate_shexp.weight has shape [128, 64], expected [128, 32]");
}

Test(qwen3next_bad, shared_expert_without_gate)
{
    load_model();
    size_t at = find_str("blk.1.ffn_gate_inp_shexp.weight");
    buf[at - 1] = 'X';
    expect_refused("tensor blk.1.ffn_gate_shexp.weight without its gate blk.1.ffn_gate_inp_shexp.weight");
}

Test(qwen3next_bad, gated_query_not_twice_as_wide)
{
    load_model();
    set_u32("qwen3next.attention.head_count", 1);
    set_u32("qwen3next.attention.head_count_kv", 1);
    expect_refused("tensor blk.3.attn_q.weight has shape [128, 256], expected [128, 128]");
}

Test(qwen3next_bad, zero_experts)
{
    load_model();
    set_u32("qwen3next.expert_count", 0);
    expect_refused("missing tensor blk.0.ffn_gate.weight");
}
