/* The OpenAI error object: {"error":{"message","type","param","code"}}. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "serve/api.h"

static json_t *str_or_null(const char *s)
{
    return s[0] ? json_stringn(s, strlen(s)) : json_null();
}

char *sd_api_error_json(const sd_api_error *e)
{
    /* sd_api_fail leaves the message valid UTF-8. */
    json_t *o = json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", json_stringn(e->message, strlen(e->message)), "type",
                          e->type[0] ? e->type : "invalid_request_error", "param", str_or_null(e->param), "code",
                          str_or_null(e->code));
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
