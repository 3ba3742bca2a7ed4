#include <stdarg.h>
#include <stdio.h>

#include "showdown.h"
#include "runtime/errf.h"

int sd_errf(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err) vsnprintf(err, SD_ERR_LEN, fmt, ap);   /* NULL: the caller wants only the -1 */
    va_end(ap);
    return -1;
}
