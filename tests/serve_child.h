/* Test helper shared by the suites that run the real `showdown serve`: start
 * it as a child on an ephemeral port (--port 0), its stderr in a log file,
 * and wait for the URL its ready line prints. The kernel kills the child if
 * the test process dies (PR_SET_PDEATHSIG). */
#ifndef SD_TESTS_SERVE_CHILD_H
#define SD_TESTS_SERVE_CHILD_H

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "showdown.h"
#include "common.h"

typedef struct {
    pid_t pid;
    char url[160], log[64];   /* url: as printed ("http://127.0.0.1:PORT") */
} serve_child;

/* A file as a NUL-terminated string; NULL if unreadable. */
static inline char *slurp(const char *path) { return read_string(path); }

/* Runs argv (argv[0] the binary) with stderr into a fresh log and waits up to
 * 60 s for a log line holding marker, then takes the URL (http://...) from
 * that line, up to a space, a newline or "/health". 0 when seen; -1 when it
 * exited first (pid reaped), -2 on a timeout or a failure to start it. */
static inline int serve_child_start_until(serve_child *c, const char *const *argv, const char *marker)
{
    snprintf(c->log, sizeof c->log, "/tmp/sd_serve_log_XXXXXX");
    int fd = mkstemp(c->log);
    if (fd < 0) { c->log[0] = 0; return -2; }
    pid_t parent = getpid();
    c->pid = fork();
    if (c->pid < 0) { close(fd); c->pid = 0; return -2; }
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(fd, 2);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 1);
        dup2(nul, 0);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    for (double until = sd_time_ms() + 60000; sd_time_ms() < until; usleep(20000)) {
        char *t = slurp(c->log);
        const char *m = t ? strstr(t, marker) : NULL;
        const char *u = m ? strstr(m, "http://") : NULL;
        if (u && strchr(m, '\n')) {   /* the whole line is in */
            size_t n = strcspn(u, " \n");
            const char *h = strstr(u, "/health");
            if (h && (size_t)(h - u) < n) n = (size_t)(h - u);
            snprintf(c->url, sizeof c->url, "%.*s", (int)n, u);
            free(t);
            return 0;
        }
        free(t);
        if (waitpid(c->pid, NULL, WNOHANG) == c->pid) { c->pid = 0; return -1; }
    }
    return -2;
}

/* The same, waiting for the ready line ("listening on URL"). */
static inline int serve_child_start(serve_child *c, const char *const *argv)
{
    return serve_child_start_until(c, argv, "listening on ");
}

/* Kills the child (if any) and removes its log. */
static inline void serve_child_kill(serve_child *c)
{
    if (c->pid > 0) { kill(c->pid, SIGKILL); waitpid(c->pid, NULL, 0); c->pid = 0; }
    if (c->log[0]) { unlink(c->log); c->log[0] = 0; }
}

#endif
