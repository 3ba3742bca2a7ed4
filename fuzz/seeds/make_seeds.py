#!/usr/bin/env python3
"""Writes the small seed inputs under fuzz/seeds/fuzz_*/ (run from the repo
root). Kept so the seeds can be regenerated; each file is a few KB at most."""
import os, struct

def put(target, name, data):
    d = os.path.join("fuzz/seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# ---- GGUF writer (v3, little-endian) ----
U32, I32, F32, BOOL, STR, ARR, U64 = 4, 5, 6, 7, 8, 9, 10

def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b

def kv(key, t, v):
    out = s(key) + struct.pack("<I", t)
    if t == U32: out += struct.pack("<I", v)
    elif t == F32: out += struct.pack("<f", v)
    elif t == BOOL: out += struct.pack("<B", v)
    elif t == STR: out += s(v)
    elif t == ARR:
        et, items = v
        out += struct.pack("<IQ", et, len(items))
        for it in items:
            out += s(it) if et == STR else struct.pack({F32: "<f", I32: "<i", U32: "<I"}[et], it)
    return out

def gguf(kvs, tensors=()):
    """tensors: (name, dims, f32 values) all F32."""
    hdr = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    data, infos = b"", b""
    for name, dims, _ in tensors:
        infos += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", 0, len(data))
        n = 1
        for d in dims: n *= d
        data += struct.pack("<%df" % n, *[((i * 37) % 11 - 5) / 16 for i in range(n)])
        data += b"\0" * (-len(data) % 32)
    out = hdr + infos
    if tensors:
        out += b"\0" * (-len(out) % 32) + data
    return out

def spm_vocab(n_extra=0):
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in (0x0A, 0x20, 0x41, 0xE2)]
    toks += ["\u2581", "\u2581H", "e", "l", "o", "\u2581w", "r", "d", "ll", "\u2581Hello", "\u2581world", ","]
    toks += ["x%d" % i for i in range(n_extra)]
    types = [2, 3, 3] + [6] * 4 + [1] * (len(toks) - 7)
    scores = [0.0] * 7 + [-float(i) for i in range(len(toks) - 7)]
    return [kv("tokenizer.ggml.model", STR, "llama"), kv("tokenizer.ggml.tokens", ARR, (STR, toks)),
            kv("tokenizer.ggml.scores", ARR, (F32, scores)), kv("tokenizer.ggml.token_type", ARR, (I32, types)),
            kv("tokenizer.ggml.bos_token_id", U32, 1), kv("tokenizer.ggml.eos_token_id", U32, 2)], len(toks)

def bpe_vocab():
    toks = ["!", "H", "e", "l", "o", "\u0120", "w", "r", "d", "ll", "He", "\u0120w", "<|end|>", "<tool>"]
    merges = ["l l", "H e", "\u0120 w", "He ll"]
    types = [1] * 12 + [3, 4]
    return [kv("tokenizer.ggml.model", STR, "gpt2"), kv("tokenizer.ggml.pre", STR, "llama-bpe"),
            kv("tokenizer.ggml.tokens", ARR, (STR, toks)), kv("tokenizer.ggml.token_type", ARR, (I32, types)),
            kv("tokenizer.ggml.merges", ARR, (STR, merges)), kv("tokenizer.ggml.eos_token_id", U32, 12),
            kv("tokenizer.ggml.add_bos_token", BOOL, 0)], len(toks)

spm, n_spm = spm_vocab()
bpe, n_bpe = bpe_vocab()
put("fuzz_tokenizer_gguf", "spm.gguf", gguf(spm))
put("fuzz_tokenizer_gguf", "bpe.gguf", gguf(bpe))
qwen = [kv("tokenizer.ggml.pre", STR, "qwen2") if b"tokenizer.ggml.pre" in x else x for x in bpe]
put("fuzz_tokenizer_gguf", "bpe-qwen2.gguf", gguf(qwen))

def model(arch, vocab, n_vocab, embd=8, heads=2, kv_heads=1, ff=16, layers=1):
    hd = embd // heads
    kvs = [kv("general.architecture", STR, arch), kv(arch + ".embedding_length", U32, embd),
           kv(arch + ".block_count", U32, layers), kv(arch + ".feed_forward_length", U32, ff),
           kv(arch + ".attention.head_count", U32, heads), kv(arch + ".attention.head_count_kv", U32, kv_heads),
           kv(arch + ".context_length", U32, 64), kv(arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5),
           kv(arch + ".rope.freq_base", F32, 10000.0)] + vocab
    t = [("token_embd.weight", (embd, n_vocab), 0), ("output_norm.weight", (embd,), 0)]
    for i in range(layers):
        b = "blk.%d." % i
        t += [(b + "attn_norm.weight", (embd,), 0), (b + "ffn_norm.weight", (embd,), 0),
              (b + "attn_q.weight", (embd, heads * hd), 0), (b + "attn_k.weight", (embd, kv_heads * hd), 0),
              (b + "attn_v.weight", (embd, kv_heads * hd), 0), (b + "attn_output.weight", (heads * hd, embd), 0),
              (b + "ffn_gate.weight", (embd, ff), 0), (b + "ffn_up.weight", (embd, ff), 0),
              (b + "ffn_down.weight", (ff, embd), 0)]
        if arch == "qwen2":
            t += [(b + "attn_q.bias", (heads * hd,), 0), (b + "attn_k.bias", (kv_heads * hd,), 0),
                  (b + "attn_v.bias", (kv_heads * hd,), 0)]
        if arch == "qwen3":
            t += [(b + "attn_q_norm.weight", (hd,), 0), (b + "attn_k_norm.weight", (hd,), 0)]
    return gguf(kvs, t)

for target in ("fuzz_model_load", "fuzz_plan_shape"):
    put(target, "llama-spm.gguf", model("llama", spm, n_spm))
    put(target, "qwen2-bpe.gguf", model("qwen2", bpe, n_bpe))
put("fuzz_model_load", "qwen3-bpe.gguf", model("qwen3", bpe, n_bpe, embd=8, heads=2, kv_heads=2))

def moe_model(arch, vocab, n_vocab, embd=8, heads=2, kv_heads=1, ff=4, experts=4, used=2, per_expert=False):
    """A one-layer mixture of experts: 3-D expert tensors (or 2-D per expert), router, gpt-oss's extras."""
    hd = embd // heads
    kvs = [kv("general.architecture", STR, arch), kv(arch + ".embedding_length", U32, embd),
           kv(arch + ".block_count", U32, 1), kv(arch + ".feed_forward_length", U32, ff),
           kv(arch + ".attention.head_count", U32, heads), kv(arch + ".attention.head_count_kv", U32, kv_heads),
           kv(arch + ".context_length", U32, 64), kv(arch + ".attention.layer_norm_rms_epsilon", F32, 1e-5),
           kv(arch + ".rope.freq_base", F32, 10000.0), kv(arch + ".expert_count", U32, experts),
           kv(arch + ".expert_used_count", U32, used), kv(arch + ".expert_feed_forward_length", U32, ff)] + vocab
    if arch == "gpt-oss":
        kvs += [kv(arch + ".attention.sliding_window", U32, 128), kv(arch + ".rope.scaling.type", STR, "yarn"),
                kv(arch + ".rope.scaling.factor", F32, 32.0),
                kv(arch + ".rope.scaling.original_context_length", U32, 4096)]
    b = "blk.0."
    t = [("token_embd.weight", (embd, n_vocab), 0), ("output_norm.weight", (embd,), 0),
         (b + "attn_norm.weight", (embd,), 0),
         (b + ("post_attention_norm.weight" if arch == "gpt-oss" else "ffn_norm.weight"), (embd,), 0),
         (b + "attn_q.weight", (embd, heads * hd), 0), (b + "attn_k.weight", (embd, kv_heads * hd), 0),
         (b + "attn_v.weight", (embd, kv_heads * hd), 0), (b + "attn_output.weight", (heads * hd, embd), 0),
         (b + "ffn_gate_inp.weight", (embd, experts), 0)]
    if per_expert:
        for e in range(experts):
            t += [(b + "ffn_gate.%d.weight" % e, (embd, ff), 0), (b + "ffn_up.%d.weight" % e, (embd, ff), 0),
                  (b + "ffn_down.%d.weight" % e, (ff, embd), 0)]
    else:
        t += [(b + "ffn_gate_exps.weight", (embd, ff, experts), 0), (b + "ffn_up_exps.weight", (embd, ff, experts), 0),
              (b + "ffn_down_exps.weight", (ff, embd, experts), 0)]
    if arch == "qwen3moe":
        t += [(b + "attn_q_norm.weight", (hd,), 0), (b + "attn_k_norm.weight", (hd,), 0)]
    if arch == "gpt-oss":
        t += [(b + "attn_q.bias", (heads * hd,), 0), (b + "attn_k.bias", (kv_heads * hd,), 0),
              (b + "attn_v.bias", (kv_heads * hd,), 0), (b + "attn_output.bias", (embd,), 0),
              (b + "attn_sinks.weight", (heads,), 0), (b + "ffn_gate_inp.bias", (experts,), 0),
              (b + "ffn_gate_exps.bias", (ff, experts), 0), (b + "ffn_up_exps.bias", (ff, experts), 0),
              (b + "ffn_down_exps.bias", (embd, experts), 0)]
    return gguf(kvs, t)

put("fuzz_model_load", "qwen3moe-bpe.gguf", moe_model("qwen3moe", bpe, n_bpe, kv_heads=2))
put("fuzz_model_load", "gptoss-bpe.gguf", moe_model("gpt-oss", bpe, n_bpe))
put("fuzz_model_load", "mixtral-spm-per-expert.gguf", moe_model("llama", spm, n_spm, per_expert=True))

def qwen3next_model(vocab, n_vocab, embd=8, heads=2, kv_heads=1, ff=4, experts=4, used=2):
    """Two layers of qwen3next: gated DeltaNet (layer 0), gated attention (layer 1, interval 2), shared expert."""
    a, hd, st, kh, vh, conv = "qwen3next", embd // heads, 2, 1, 2, 4
    kvs = [kv("general.architecture", STR, a), kv(a + ".embedding_length", U32, embd), kv(a + ".block_count", U32, 2),
           kv(a + ".feed_forward_length", U32, ff), kv(a + ".attention.head_count", U32, heads),
           kv(a + ".attention.head_count_kv", U32, kv_heads), kv(a + ".attention.key_length", U32, hd),
           kv(a + ".context_length", U32, 64), kv(a + ".attention.layer_norm_rms_epsilon", F32, 1e-6),
           kv(a + ".rope.freq_base", F32, 10000.0), kv(a + ".rope.dimension_count", U32, 2),
           kv(a + ".expert_count", U32, experts), kv(a + ".expert_used_count", U32, used),
           kv(a + ".expert_feed_forward_length", U32, ff), kv(a + ".expert_shared_feed_forward_length", U32, ff),
           kv(a + ".ssm.conv_kernel", U32, conv), kv(a + ".ssm.state_size", U32, st),
           kv(a + ".ssm.group_count", U32, kh), kv(a + ".ssm.time_step_rank", U32, vh),
           kv(a + ".ssm.inner_size", U32, st * vh), kv(a + ".full_attention_interval", U32, 2)] + vocab
    cd, vd = 2 * st * kh + st * vh, st * vh
    t = [("token_embd.weight", (embd, n_vocab), 0), ("output_norm.weight", (embd,), 0)]
    for i in range(2):
        b = "blk.%d." % i
        t += [(b + "attn_norm.weight", (embd,), 0), (b + "post_attention_norm.weight", (embd,), 0)]
        if i == 0:
            t += [(b + "attn_qkv.weight", (embd, cd), 0), (b + "attn_gate.weight", (embd, vd), 0),
                  (b + "ssm_conv1d.weight", (conv, cd), 0), (b + "ssm_dt.bias", (vh,), 0), (b + "ssm_a", (vh,), 0),
                  (b + "ssm_ba.weight", (embd, 2 * vh), 0), (b + "ssm_norm.weight", (st,), 0),
                  (b + "ssm_out.weight", (vd, embd), 0)]
        else:
            t += [(b + "attn_q.weight", (embd, 2 * heads * hd), 0), (b + "attn_k.weight", (embd, kv_heads * hd), 0),
                  (b + "attn_v.weight", (embd, kv_heads * hd), 0), (b + "attn_output.weight", (heads * hd, embd), 0),
                  (b + "attn_q_norm.weight", (hd,), 0), (b + "attn_k_norm.weight", (hd,), 0)]
        t += [(b + "ffn_gate_inp.weight", (embd, experts), 0), (b + "ffn_gate_exps.weight", (embd, ff, experts), 0),
              (b + "ffn_up_exps.weight", (embd, ff, experts), 0), (b + "ffn_down_exps.weight", (ff, embd, experts), 0),
              (b + "ffn_gate_inp_shexp.weight", (embd,), 0), (b + "ffn_gate_shexp.weight", (embd, ff), 0),
              (b + "ffn_up_shexp.weight", (embd, ff), 0), (b + "ffn_down_shexp.weight", (ff, embd), 0)]
    return gguf(kvs, t)

put("fuzz_model_load", "qwen3next-bpe.gguf", qwen3next_model(bpe, n_bpe))

# ---- text formats ----
row = ('{"bench_schema": "showdown-bench/1", "model_filename": "tiny-q4_0.gguf", "model_type": "Q4_0", '
       '"n_threads": %d, "n_prompt": 0, "n_gen": 16, "n_depth": 0, "test": "tg16", "type_k": "f16", '
       '"n_reps": 3, "avg_ts": %g, "stddev_ts": 1.5, "samples_ts": [10.5, 11, 1e1], "roofline_ts": null, '
       '"energy_j": null, "tokens_per_joule": null, "energy_source": "none", "cpu_info": "CPU \\"x\\" \\u00e9", '
       '"build_commit": "abc", "error": null, "cold": false}')
put("fuzz_report_load", "rows.jsonl", row % (1, 12.5) + "\n" + row % (2, 20) + "\n")
put("fuzz_report_load", "array.json", "[\n " + row % (1, 12.5) + ",\n " + row % (4, 33) + "\n]\n")
put("fuzz_bench_compare", "rows.jsonl", row % (1, 12.5) + "\n\n" + row % (2, 20) + "\n")

for i, v in enumerate(["512", "1-4", "16-128+16", "16-1024*2", "1,2,4-8,0-100+25", "0"]):
    put("fuzz_listarg", "list%d" % i, bytes([i % 4]) + v.encode())

prof = ("# showdown calibration profile v1 (written by `showdown calibrate`)\ncpu_model\tSome CPU @ 2GHz\n"
        "n_cpus\t4\nmax_threads\t4\nisa\tavx2\nmeasured_unix\t1700000000\ngflops_f32\t100.5\n"
        "gflops_bf16\t50.0\ngops_int8\t400.0\n" + "".join("bw_gbps\t%d\t%.3f\n" % (t, 10.0 * t) for t in range(1, 5)))
put("fuzz_calib_load", "profile.tsv", prof)
# the cache lines a profile has since the cache-aware decode ceiling
put("fuzz_calib_load", "profile-caches.tsv", prof + "l1d_bytes\t49152\t1\nl2_bytes\t1310720\t1\n"
    "llc_bytes\t50331648\t2\t3\n" + "".join("cache_bw_gbps\t%d\t%d\t%.3f\n" % (ws, t, 30.0 * t * 4 ** k)
                                              for k, ws in enumerate((25165824, 6291456, 1572864)) for t in range(1, 5)))

hw = ("# id\tname\tkind\tfamily\tmem\tusable\tbw\tlink\tf16\tint8\tfp8\tfp4\tload_w\tidle_w\tcores\tisa\thost\tsource\n"
      "rtx-x\tNVIDIA RTX X\tgpu\tcuda\t24\t22.5\t1008\tpcie4x16\t165\t660\t0\t0\t350\t20\t128\t-\thost-ddr5\thttps://example.com/spec\n"
      "host-ddr5\tDDR5 desktop\tcpu\tcpu\t64\t56\t80\t-\t2\t4\t0\t0\t120\t30\t16\tavx2\t-\thttps://example.com/ddr5\n"
      "m-x\tApple M X\tsoc\tmetal\t32\t24\t400\tunified\t27\t0\t0\t0\t60\t5\t10\tneon\t-\thttps://example.com/m\n")
put("fuzz_hardware", "hardware.tsv", hw)

def logits(n_vocab, prompt, gen):
    rows = len(prompt) + len(gen)
    return (b"SDRL" + struct.pack("<III", n_vocab, len(prompt), len(gen)) +
            struct.pack("<%di" % rows, *(prompt + gen)) +
            struct.pack("<%df" % (rows * n_vocab), *[float(i % 7) for i in range(rows * n_vocab)]))
put("fuzz_logits_file", "small.sdrl", logits(8, [1, 5, 6], [2]))
put("fuzz_logits_file", "empty.sdrl", logits(4, [], []))
