/* fuzz.h: what the libFuzzer targets share (tests/fuzz/README.md).
 *
 * A target that must hand its parser a file gets a private directory
 * (under /dev/shm when there is one: no disk I/O per run) and writes the
 * input there; FZ_CHECK aborts with a message, which libFuzzer reports as
 * a crash and saves the input for. */
#ifndef HOMEPORT_FUZZ_H
#define HOMEPORT_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char fz_dir[128];

static inline void fz_cleanup(void)
{
    char cmd[200];

    if (fz_dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", fz_dir);
    }
}

/* The target's private directory, made on first use (removed at exit). */
static inline const char *fz_tmpdir(void)
{
    if (!fz_dir[0]) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(fz_dir, sizeof fz_dir, "%s/homeport-fuzz-XXXXXX", base);
        if (!mkdtemp(fz_dir)) {
            perror(fz_dir);
            abort();
        }
        atexit(fz_cleanup);
    }
    return fz_dir;
}

/* Replace path with len bytes (not atomically: only this process reads it). */
static inline void fz_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t off = 0;

    if (fd < 0) {
        perror(path);
        abort();
    }
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n <= 0) {
            perror(path);
            abort();
        }
        off += (size_t)n;
    }
    close(fd);
}

/* data as a NUL-terminated string of exactly size bytes, NULs included
 * (malloc'ed: a read past it is an ASan report). */
static inline char *fz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* ---- a strict JSON checker (RFC 8259), for what homeport prints -------- */

struct fz_json {
    const char *p, *end;
    int depth;
};

static bool fz_json_value(struct fz_json *j);

static inline void fz_json_ws(struct fz_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* A string at j->p (its quote): escapes, no control character, UTF-8. */
static inline bool fz_json_string(struct fz_json *j)
{
    const unsigned char *p = (const unsigned char *)j->p, *end = (const unsigned char *)j->end;

    if (p >= end || *p++ != '"')
        return false;
    while (p < end && *p != '"') {
        if (*p < 0x20)
            return false;
        if (*p == '\\') {
            if (++p >= end)
                return false;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (p + i >= end || !strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return false;
                p += 5;
            } else if (strchr("\"\\/bfnrt", *p) && *p) {
                p++;
            } else {
                return false;
            }
            continue;
        }
        if (*p < 0x80) {
            p++;
            continue;
        }
        int n = *p >= 0xc2 && *p <= 0xdf   ? 2
                : *p >= 0xe0 && *p <= 0xef ? 3
                : *p >= 0xf0 && *p <= 0xf4 ? 4
                                           : 0;
        if (n == 0 || end - p < n)
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        /* no overlong 3/4-byte forms, no surrogates, nothing past U+10FFFF */
        if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
            (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
            return false;
        p += n;
    }
    if (p >= end)
        return false;
    j->p = (const char *)p + 1;
    return true;
}

static inline bool fz_json_number(struct fz_json *j)
{
    const char *p = j->p;

    if (p < j->end && *p == '-')
        p++;
    if (p >= j->end || *p < '0' || *p > '9')
        return false;
    if (*p == '0')
        p++;
    else
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    if (p < j->end && *p == '.') {
        if (++p >= j->end || *p < '0' || *p > '9')
            return false;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        if (++p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return false;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    }
    j->p = p;
    return true;
}

static inline bool fz_json_word(struct fz_json *j, const char *w)
{
    size_t n = strlen(w);

    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return false;
    j->p += n;
    return true;
}

static bool fz_json_value(struct fz_json *j)
{
    bool ok = false;

    fz_json_ws(j);
    if (j->p >= j->end || ++j->depth > 64)
        return false;
    switch (*j->p) {
    case '"': ok = fz_json_string(j); break;
    case '{':
    case '[': {
        char close = *j->p == '{' ? '}' : ']';
        bool object = close == '}';
        j->p++;
        fz_json_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            ok = true;
            break;
        }
        for (;;) {
            if (object) {
                fz_json_ws(j);
                if (!fz_json_string(j))
                    return false;
                fz_json_ws(j);
                if (j->p >= j->end || *j->p++ != ':')
                    return false;
            }
            if (!fz_json_value(j))
                return false;
            fz_json_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == close) {
                j->p++;
                ok = true;
            }
            break;
        }
        break;
    }
    case 't': ok = fz_json_word(j, "true"); break;
    case 'f': ok = fz_json_word(j, "false"); break;
    case 'n': ok = fz_json_word(j, "null"); break;
    default: ok = fz_json_number(j); break;
    }
    j->depth--;
    return ok;
}

/* Whether the len bytes at s are one JSON value (blanks around it allowed). */
static inline bool fz_json_valid(const char *s, size_t len)
{
    struct fz_json j = {s, s + len, 0};

    if (!fz_json_value(&j))
        return false;
    fz_json_ws(&j);
    return j.p == j.end;
}

/* Whether s..s+len is exactly one JSON string literal. */
static inline bool fz_json_string_valid(const char *s, size_t len)
{
    struct fz_json j = {s, s + len, 0};

    return fz_json_string(&j) && j.p == j.end;
}

#endif
