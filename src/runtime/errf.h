/* The library's error convention in one place: a message formatted into the
 * caller's SD_ERR_LEN buffer, and -1 for the caller to return. */
#ifndef SD_RUNTIME_ERRF_H
#define SD_RUNTIME_ERRF_H

int sd_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
