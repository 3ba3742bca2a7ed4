/* llama-bench style list arguments, so one command runs a sweep:
 *   "64,128,256"   a list
 *   "1-4"          a range, step 1
 *   "16-128+16"    first-last+step
 *   "16-1024*2"    first-last*mult
 * and any comma-separated mix of those. */
#ifndef SD_LISTARG_H
#define SD_LISTARG_H

/* Appends the values of s (each in [lo, hi]) to *vals (realloc'd, caller
 * frees), at most 4096 in all. 0 ok, -1 with a message naming flag. */
int sd_parse_int_list(const char *flag, const char *s, long lo, long hi, int **vals, int *n, char *err);
/* Splits a comma list into malloc'd copies (caller frees each and the array). */
int sd_parse_str_list(const char *flag, const char *s, char ***vals, int *n, char *err);

#endif
