#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"
#include "user.h"

struct slot {
    char user[HP_USER_NAME_MAX + 1];
    char pw[PROTO_SECRET_MAX + 1];
    int64_t until;
};

#define TABLE_LEN (SECRET_SLOTS * sizeof(struct slot))

static struct slot *table;

int secret_init(int *lock_err)
{
    void *p;

    *lock_err = 0;
    if (table)
        return 0;
    p = mmap(NULL, TABLE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (mlock(p, TABLE_LEN) < 0)
        *lock_err = errno;
    madvise(p, TABLE_LEN, MADV_DONTDUMP);
    table = p;
    return 0;
}

static struct slot *slot_of(const char *user)
{
    for (size_t i = 0; table && i < SECRET_SLOTS; i++)
        if (table[i].user[0] && !strcmp(table[i].user, user))
            return &table[i];
    return NULL;
}

static void wipe(struct slot *s)
{
    if (s)
        explicit_bzero(s, sizeof *s);
}

int secret_keep(const char *user, const char *pw, int64_t until)
{
    struct slot *s = slot_of(user);
    int64_t now = clock_ms();

    for (size_t i = 0; !s && table && i < SECRET_SLOTS; i++)
        if (!table[i].user[0] || table[i].until <= now)
            s = &table[i];
    if (!s)
        return -ENOSPC;
    wipe(s);
    snprintf(s->user, sizeof s->user, "%s", user);
    snprintf(s->pw, sizeof s->pw, "%s", pw);
    s->until = until;
    return 0;
}

const char *secret_get(const char *user)
{
    const struct slot *s = slot_of(user);
    return s && s->pw[0] ? s->pw : NULL;
}

void secret_forget(const char *user)
{
    wipe(slot_of(user));
}

void secret_expire(int64_t now)
{
    for (size_t i = 0; table && i < SECRET_SLOTS; i++)
        if (table[i].user[0] && table[i].until <= now)
            wipe(&table[i]);
}

void secret_keep_only(const char *user)
{
    if (!table)
        return;
    for (size_t i = 0; i < SECRET_SLOTS; i++)
        if (!user || strcmp(table[i].user, user) != 0)
            wipe(&table[i]);
    mlock(table, TABLE_LEN);
}
