/* The server's pure parts: request parsing (every field, every refusal) and
 * the stop-string / UTF-8 holdback of streamed text. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "serve/api.h"
#include "serve/stop_filter.h"

static int parse(const char *body, sd_api_kind k, sd_api_request *r, sd_api_error *e)
{
    return sd_api_parse_request(body, strlen(body), k, r, e);
}

Test(serve_api, completion_fields)
{
    sd_api_request r;
    sd_api_error e;
    cr_assert_eq(parse("{\"model\":\"m\",\"prompt\":\"Hi there\",\"max_tokens\":7,\"temperature\":0.5,\"top_p\":0.9,"
                       "\"top_k\":40,\"min_p\":0.1,\"seed\":123,\"stop\":[\"a\",\"\",\"bc\"],\"presence_penalty\":0.5,"
                       "\"frequency_penalty\":-1,\"logprobs\":3,\"echo\":true,\"ignore_eos\":true,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"user\":\"x\",\"n\":1,\"unknown\":[1,2]}",
                       SD_API_COMPLETION, &r, &e),
                 0, "%s", e.message);
    cr_assert_str_eq(r.model, "m");
    cr_assert_str_eq(r.prompt, "Hi there");
    cr_assert_eq(r.prompt_len, 8);
    cr_assert_eq(r.max_tokens, 7);
    cr_assert_float_eq(r.sampling.temp, 0.5f, 1e-6);
    cr_assert_float_eq(r.sampling.top_p, 0.9f, 1e-6);
    cr_assert_eq(r.sampling.top_k, 40);
    cr_assert_float_eq(r.sampling.min_p, 0.1f, 1e-6);
    cr_assert_eq(r.sampling.seed, 123);
    cr_assert(r.has_seed);
    cr_assert_eq(r.n_stop, 2, "the empty stop string is dropped");
    cr_assert_str_eq(r.stop[0], "a");
    cr_assert_str_eq(r.stop[1], "bc");
    cr_assert_float_eq(r.presence_penalty, 0.5f, 1e-6);
    cr_assert_float_eq(r.frequency_penalty, -1.0f, 1e-6);
    cr_assert_eq(r.logprobs, 3);
    cr_assert(r.echo && r.ignore_eos && r.stream && r.include_usage);
    sd_api_request_free(&r);
}

Test(serve_api, defaults_and_token_prompt)
{
    sd_api_request r;
    sd_api_error e;
    cr_assert_eq(parse("{\"prompt\":[1,2,300],\"stop\":\"x\",\"temperature\":null}", SD_API_COMPLETION, &r, &e), 0, "%s",
                 e.message);
    cr_assert(r.prompt_is_tokens);
    cr_assert_eq(r.n_prompt_tokens, 3);
    cr_assert_eq(r.prompt_tokens[2], 300);
    cr_assert_eq(r.max_tokens, -1);
    cr_assert_eq(r.logprobs, -1);
    cr_assert_float_eq(r.sampling.temp, 1.0f, 1e-6, "OpenAI's default temperature");
    cr_assert_eq(r.n_stop, 1);
    cr_assert(!r.has_seed && !r.stream);
    sd_api_request_free(&r);
}

Test(serve_api, chat_messages)
{
    sd_api_request r;
    sd_api_error e;
    cr_assert_eq(parse("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
                       "{\"role\":\"assistant\",\"content\":null},{\"role\":\"developer\",\"content\":\"d\"}],"
                       "\"max_completion_tokens\":5,\"logprobs\":true,\"top_logprobs\":2}",
                       SD_API_CHAT, &r, &e),
                 0, "%s", e.message);
    cr_assert_eq(r.n_msgs, 4);
    cr_assert_str_eq(r.msgs[0].role, "system");
    cr_assert_str_eq(r.msgs[1].content, "ab");
    cr_assert_str_eq(r.msgs[2].content, "");
    cr_assert_str_eq(r.msgs[3].role, "system");
    cr_assert_eq(r.max_tokens, 5);
    cr_assert(r.logprobs);
    cr_assert_eq(r.top_logprobs, 2);
    sd_api_request_free(&r);
}

/* Each bad body: 400, the named param, and a one-line message. */
Test(serve_api, refusals)
{
    static const struct { sd_api_kind k; const char *body, *param; } cases[] = {
        {SD_API_COMPLETION, "{\"prompt\":", ""},
        {SD_API_COMPLETION, "[1,2]", ""},
        {SD_API_COMPLETION, "{\"prompt\":\"a\"} trailing", ""},
        {SD_API_COMPLETION, "{}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":\"\"}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":[]}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":[1,-2]}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":[1,2.5]}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":7}", "prompt"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":-1}", "max_tokens"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":\"5\"}", "max_tokens"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"max_tokens\":1.5}", "max_tokens"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":\"hot\"}", "temperature"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"temperature\":-0.1}", "temperature"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"top_p\":1.5}", "top_p"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"presence_penalty\":3}", "presence_penalty"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"seed\":\"1\"}", "seed"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"stop\":5}", "stop"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"a\",1]}", "stop"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
                            "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}", "stop"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"n\":2}", "n"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":21}", "logprobs"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"echo\":1}", "echo"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"stream\":\"yes\"}", "stream"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":1}}", "include_usage"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"model\":3}", "model"},
        {SD_API_COMPLETION, "{\"prompt\":\"a\",\"prompt\":\"b\"}", ""},
        {SD_API_COMPLETION, "{\"prompt\":\"a\\u0000b\"}", ""},
        {SD_API_COMPLETION, "{\"prompt\":\"\\ud800\"}", ""},
        {SD_API_COMPLETION, "{\"\\u\n0", ""},   /* jansson's message quotes the newline */
        {SD_API_CHAT, "{\"messages\":[]}", "messages"},
        {SD_API_CHAT, "{\"messages\":{}}", "messages"},
        {SD_API_CHAT, "{\"prompt\":\"a\"}", "messages"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"a\"}]}", "messages[0]"},
        {SD_API_CHAT, "{\"messages\":[{\"content\":\"a\"}]}", "messages[0]"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages[0].content"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"tools\":[{\"type\":\"function\"}]}", "tools"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"response_format\":{\"type\":\"json_object\"}}",
         "response_format"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"top_logprobs\":2}", "top_logprobs"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"logprobs\":1}", "logprobs"},
        {SD_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"logit_bias\":{\"5\":1}}", "logit_bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sd_api_request r;
        sd_api_error e;
        cr_assert_eq(parse(cases[i].body, cases[i].k, &r, &e), -1, "accepted: %s", cases[i].body);
        cr_assert_eq(e.status, 400, "%s", cases[i].body);
        cr_assert_str_eq(e.param, cases[i].param, "%s: param '%s'", cases[i].body, e.param);
        cr_assert(e.message[0] && !strchr(e.message, '\n'), "%s", cases[i].body);
        cr_assert_null(r.prompt);
        cr_assert_null(r.msgs);
    }
}

Test(serve_api, invalid_utf8_is_refused)
{
    static const char *bodies[] = {"{\"prompt\":\"\xff\"}", "{\"prompt\":\"\xc3\"}", "{\"prompt\":\"\xed\xa0\x80\"}",
                                   "{\"prompt\":\"\xc0\xaf\"}", "{\"prompt\":\"\xf4\x90\x80\x80\"}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        sd_api_request r;
        sd_api_error e;
        cr_assert_eq(parse(bodies[i], SD_API_COMPLETION, &r, &e), -1, "case %zu", i);
        cr_assert_eq(e.status, 400);
        cr_assert(strstr(e.message, "UTF-8"), "%s", e.message);
    }
    cr_assert(sd_utf8_valid("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 12));
}

Test(serve_api, error_object_shape)
{
    sd_api_error e;
    sd_api_fail(&e, 404, "invalid_request_error", "model", "model_not_found", "no model '%s'", "x\"y");
    char *s = sd_api_error_json(&e);
    json_error_t je;
    json_t *o = json_loads(s, 0, &je), *err = json_object_get(o, "error");
    cr_assert(json_is_object(err), "%s", s);
    cr_assert_str_eq(json_string_value(json_object_get(err, "message")), "no model 'x\"y'");
    cr_assert_str_eq(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "param")), "model");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "model_not_found");
    json_decref(o);
    free(s);
    sd_api_fail(&e, 400, NULL, NULL, NULL, "bad");
    s = sd_api_error_json(&e);
    o = json_loads(s, 0, &je);
    err = json_object_get(o, "error");
    cr_assert(json_is_null(json_object_get(err, "param")) && json_is_null(json_object_get(err, "code")), "%s", s);
    json_decref(o);
    free(s);
}

/* ---- stop strings ------------------------------------------------------ */

/* Feeds pieces, concatenates what is released; returns whether a stop hit. */
static int feed(const char *const *stops, int n_stops, const char *const *pieces, int n, char *out, int flush)
{
    sd_stop_filter f;
    sd_stop_init(&f, stops, n_stops);
    out[0] = 0;
    int hit = 0;
    for (int i = 0; i < n && !hit; i++) {
        const char *o;
        size_t k;
        hit = sd_stop_push(&f, pieces[i], strlen(pieces[i]), &o, &k);
        strncat(out, o, k);
    }
    if (!hit && flush) {
        const char *o;
        size_t k;
        sd_stop_flush(&f, &o, &k);
        strncat(out, o, k);
    }
    sd_stop_free(&f);
    return hit;
}

Test(serve_stop, split_across_pieces)
{
    const char *stops[] = {"lo w"};
    const char *pieces[] = {"Hel", "lo", " wo", "rld"};
    char out[64];
    cr_assert_eq(feed(stops, 1, pieces, 4, out, 1), 1);
    cr_assert_str_eq(out, "Hel");
}

Test(serve_stop, holds_back_only_what_could_start_a_stop)
{
    const char *stops[] = {"abc"};
    sd_stop_filter f;
    sd_stop_init(&f, stops, 1);
    const char *o;
    size_t k;
    cr_assert_eq(sd_stop_push(&f, "xa", 2, &o, &k), 0);
    cr_assert_eq(k, 1);
    cr_assert_eq(o[0], 'x');
    cr_assert_eq(sd_stop_push(&f, "b", 1, &o, &k), 0);
    cr_assert_eq(k, 0, "'ab' may still become 'abc'");
    cr_assert_eq(sd_stop_push(&f, "d", 1, &o, &k), 0);
    cr_assert_eq(k, 3);
    cr_assert(!memcmp(o, "abd", 3));
    cr_assert_eq(sd_stop_push(&f, "ab", 2, &o, &k), 0);
    cr_assert_eq(sd_stop_flush(&f, &o, &k), 0);
    cr_assert_eq(k, 2, "at the end the held text goes out");
    sd_stop_free(&f);
}

Test(serve_stop, earliest_of_several_and_at_start)
{
    const char *stops[] = {"world", "o w", "zz"};
    const char *pieces[] = {"hello world"};
    char out[64];
    cr_assert_eq(feed(stops, 3, pieces, 1, out, 1), 1);
    cr_assert_str_eq(out, "hell");
    const char *p2[] = {"zz top"};
    cr_assert_eq(feed(stops, 3, p2, 1, out, 1), 1);
    cr_assert_str_eq(out, "");
    const char *p3[] = {"no stop here"};
    cr_assert_eq(feed(stops, 3, p3, 1, out, 1), 0);
    cr_assert_str_eq(out, "no stop here");
}

Test(serve_stop, utf8_never_split)
{
    sd_stop_filter f;
    sd_stop_init(&f, NULL, 0);
    const char *o;
    size_t k;
    cr_assert_eq(sd_stop_push(&f, "a\xe2\x82", 3, &o, &k), 0);
    cr_assert_eq(k, 1, "the half euro sign is held");
    cr_assert_eq(sd_stop_push(&f, "\xac!", 2, &o, &k), 0);
    cr_assert_eq(k, 4);
    cr_assert(!memcmp(o, "\xe2\x82\xac!", 4));
    /* An invalid byte, and a sequence cut off by the end, become U+FFFD. */
    cr_assert_eq(sd_stop_push(&f, "\xff" "b\xc3", 3, &o, &k), 0);
    cr_assert_eq(k, 4);
    cr_assert(!memcmp(o, "\xef\xbf\xbd" "b", 4));
    cr_assert_eq(sd_stop_flush(&f, &o, &k), 0);
    cr_assert_eq(k, 3);
    cr_assert(!memcmp(o, "\xef\xbf\xbd", 3));
    sd_stop_free(&f);
}

Test(serve_stop, multibyte_stop_split_inside_a_character)
{
    const char *stops[] = {"\xc3\xa9t\xc3\xa9"};   /* "été" */
    const char *pieces[] = {"un \xc3", "\xa9t\xc3", "\xa9 chaud"};
    char out[64];
    cr_assert_eq(feed(stops, 1, pieces, 3, out, 1), 1);
    cr_assert_str_eq(out, "un ");
}
