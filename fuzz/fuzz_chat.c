/* libFuzzer target for the chat templates (src/text/chat.c): the input is a
 * Jinja text to detect, then a conversation (NUL-separated role, content
 * pairs, as a server request would bring) rendered with every family. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "showdown.h"
#include "text/chat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    sd_chat_template t = sd_chat_detect(buf);
    if (t != SD_CHAT_UNKNOWN && !sd_chat_end_marker(t) && t != SD_CHAT_LLAMA2 && t != SD_CHAT_MISTRAL &&
        t != SD_CHAT_MISTRAL_TEKKEN)
        abort();
    sd_chat_msg msgs[16];
    int n = 0;
    for (size_t off = strlen(buf) + 1; off < size && n < 16;) {
        const char *role = buf + off;
        off += strlen(role) + 1;
        if (off >= size) break;
        const char *content = buf + off;
        off += strlen(content) + 1;
        msgs[n++] = (sd_chat_msg){role, content};
    }
    sd_chat_opts o = {.date = "2025-01-01"};
    for (int k = SD_CHAT_UNKNOWN; k <= SD_CHAT_LLAMA31; k++) {
        char err[SD_ERR_LEN] = "", *out = NULL;
        if (sd_chat_apply_opts((sd_chat_template)k, msgs, n, size & 1, &o, &out, err)) {
            if (out || !err[0] || strchr(err, '\n')) abort();
            continue;
        }
        if (!out) abort();
        free(out);
    }
    free(buf);
    return 0;
}
