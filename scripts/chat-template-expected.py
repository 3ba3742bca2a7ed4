#!/usr/bin/env python3
"""Renders the real chat templates in tests/data/chat/ for the conversation
tests/test_chat.c uses, the way Hugging Face transformers does
(jinja2 with trim_blocks and lstrip_blocks), and prints each result as a C
string literal. The strings in tests/test_chat.c were pasted from this output.
Needs only `pip install jinja2`.

Where the templates come from: llama.cpp's models/templates/ (Qwen2.5,
Llama 3.1, Llama 3.3, Phi-3.5-mini, Gemma 2, Mistral Nemo, DeepSeek-R1-Distill, gpt-oss)
and tests/test-chat-template.cpp (deepseek-coder-33b-instruct); SmolLM2's from
its GGUF file; Llama-2-13b-chat, Meta-Llama-3-8B-Instruct and gemma-3-4b-it
from their tokenizer_config.json as published; mistral-7b-instruct-v0.3 is
Nemo's template with v0.3's spacing ("[INST] ", " " + content|trim), the five
places where the two published templates differ."""
import json
import sys

import jinja2

CONV = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "  Hi there  "},
    {"role": "user", "content": "What is the capital of France?"},
]
# template file -> (bos_token, eos_token), as in each model's tokenizer_config.json
TEMPLATES = {
    "smollm2-135m-instruct.jinja": ("<|im_start|>", "<|im_end|>"),
    "qwen2.5-7b-instruct.jinja": (None, "<|im_end|>"),
    "llama-2-13b-chat.jinja": ("<s>", "</s>"),
    "llama-3-8b-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.1-8b-instruct.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "mistral-7b-instruct-v0.3.jinja": ("<s>", "</s>"),
    "mistral-nemo-instruct-2407.jinja": ("<s>", "</s>"),
    "gemma-3-4b-it.jinja": ("<bos>", "<eos>"),
    "phi-3.5-mini-instruct.jinja": ("<s>", "<|endoftext|>"),
    "deepseek-coder-33b-instruct.jinja": ("<｜begin▁of▁sentence｜>", "<|EOT|>"),
    "gpt-oss-120b.jinja": ("<|startoftext|>", "<|return|>"),
}
DATE = "2025-08-05"  # gpt-oss's template prints strftime_now("%Y-%m-%d")


def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


def c_literal(s):
    out = []
    for ch in s:
        if ch == "\n":
            out.append("\\n")
        elif ch in '"\\':
            out.append("\\" + ch)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def main():
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, **k: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: DATE
    folder = sys.argv[1] if len(sys.argv) > 1 else "tests/data/chat"
    for name, (bos, eos) in TEMPLATES.items():
        text = open(f"{folder}/{name}", encoding="utf-8").read()
        out = env.from_string(text).render(messages=CONV, add_generation_prompt=True, bos_token=bos or "",
                                           eos_token=eos)
        print(f"/* {name} */\n{c_literal(out)}\n")


if __name__ == "__main__":
    main()
