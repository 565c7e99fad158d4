/*
 * auth_verifier.c - passwords checked off the event loop, failures
 * delayed and counted per client address (see auth_verifier.h).
 *
 * One crypt thread takes requests from a list under a mutex and puts
 * verdicts on another; a pipe wakes the event loop, which applies the
 * failure accounting and answers (failures after a timer). The thread
 * copies the user's hash under the mutex, so a reload may swap the users
 * at any time. Trusts: see the header.
 */
#include "queue/auth_verifier.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

/* For an unknown user: a real sha512-crypt setting, so the time spent is
 * that of a real check and tells nothing. */
#define DUMMY_SETTING "$6$rounds=5000$sealpostdummy$"

struct request {
    struct request *next;
    unsigned long serial;
    struct auth_request req;
    bool ok;                    /* the thread's verdict */
    int forced;                 /* a verdict without a check (locked, busy), or -1 */
    struct event *delay;        /* a failure waits before it is answered */
    struct auth_verifier *av;
};

struct failure {
    char client[AUTH_CLIENT_MAX];
    unsigned count;
    time_t first;               /* start of the window */
    time_t locked_until;
};

struct auth_verifier {
    struct event_base *base;
    const struct submission_config *sc;
    auth_done_cb cb;
    void *arg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct credentials *users;          /* under lock */
    struct request *todo, *todo_tail;   /* under lock */
    struct request *done;               /* under lock */
    struct request *delayed;            /* failures waiting for their answer */
    size_t pending;                     /* loop thread only */
    int pipe_rd, pipe_wr;
    struct event *pipe_ev;
    struct failure failures[AUTH_FAILURE_SLOTS];
};

/* Compare without an early exit: the time does not depend on where two
 * hashes first differ. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;

    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* A verdict for the loop (av->lock held): on the done list, pipe poked. */
static void post_done(struct auth_verifier *av, struct request *r)
{
    r->next = av->done;
    av->done = r;
    (void)!write(av->pipe_wr, "x", 1);
}

/* The thread: one crypt per request. */
static bool check_password(struct auth_verifier *av, struct crypt_data *cd,
                           const struct auth_request *req)
{
    char hash[CREDENTIALS_HASH_MAX + 1];
    const char *stored, *out;
    bool known;

    pthread_mutex_lock(&av->lock);
    stored = credentials_hash(av->users, req->user);
    known = stored != NULL;
    snprintf(hash, sizeof(hash), "%s", known ? stored : DUMMY_SETTING);
    pthread_mutex_unlock(&av->lock);
    memset(cd, 0, sizeof(*cd));
    out = crypt_r(req->password, hash, cd);
    known = known && out != NULL && out[0] != '*' && same_secret(out, hash);
    explicit_bzero(cd, sizeof(*cd));
    explicit_bzero(hash, sizeof(hash));
    return known;
}

static void *crypt_thread(void *arg)
{
    struct auth_verifier *av = arg;
    struct crypt_data *cd = xmalloc(sizeof(*cd));

    pthread_mutex_lock(&av->lock);
    while (!av->stop) {
        struct request *r = av->todo;

        if (r == NULL) {
            pthread_cond_wait(&av->wake, &av->lock);
            continue;
        }
        av->todo = r->next;
        if (av->todo == NULL)
            av->todo_tail = NULL;
        pthread_mutex_unlock(&av->lock);
        r->ok = check_password(av, cd, &r->req);
        explicit_bzero(r->req.password, sizeof(r->req.password));
        pthread_mutex_lock(&av->lock);
        post_done(av, r);
    }
    pthread_mutex_unlock(&av->lock);
    free(cd);
    return NULL;
}

/* ------------------------------------------------ failures per address */

static struct failure *failure_slot(struct auth_verifier *av, const char *client, bool make)
{
    struct failure *oldest = &av->failures[0];

    for (size_t i = 0; i < AUTH_FAILURE_SLOTS; i++) {
        struct failure *f = &av->failures[i];
        if (f->client[0] != '\0' && strcmp(f->client, client) == 0)
            return f;
        if (f->client[0] == '\0' || f->first < oldest->first)
            oldest = f;
    }
    if (!make)
        return NULL;
    memset(oldest, 0, sizeof(*oldest));
    snprintf(oldest->client, sizeof(oldest->client), "%s", client);
    return oldest;
}

static bool locked_out(struct auth_verifier *av, const char *client, time_t now)
{
    struct failure *f = failure_slot(av, client, false);

    return f != NULL && f->locked_until > now;
}

static void note_failure(struct auth_verifier *av, const char *client, time_t now)
{
    struct failure *f = failure_slot(av, client, true);

    if (f->count == 0 || now - f->first >= (time_t)av->sc->auth_window) {
        f->first = now;
        f->count = 0;
    }
    if (++f->count >= av->sc->auth_failures) {
        f->locked_until = now + (time_t)av->sc->auth_lockout;
        log_warn("event=auth_lockout client=%s failures=%u seconds=%u", client, f->count,
                 av->sc->auth_lockout);
    }
}

/* ------------------------------------------------------------ answers */

static void answer(struct auth_verifier *av, struct request *r, enum auth_verdict v,
                   const char *user)
{
    struct auth_answer ans;

    memset(&ans, 0, sizeof(ans));
    ans.id = r->req.id;
    ans.verdict = (uint32_t)v;
    if (v == AUTH_OK) {
        unsigned char rnd[AUTH_TOKEN_LEN / 2];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
            ans.verdict = AUTH_TEMPFAIL;
        } else {
            for (size_t i = 0; i < sizeof(rnd); i++)
                snprintf(ans.token + 2 * i, 3, "%02x", rnd[i]);
        }
    }
    av->cb(r->serial, &ans, ans.verdict == AUTH_OK ? user : NULL,
           ans.verdict == AUTH_OK ? auth_mechanism_name(r->req.mechanism) : NULL, av->arg);
    if (r->delay)
        event_free(r->delay);
    explicit_bzero(r, sizeof(*r));
    free(r);
}

static void unlink_delayed(struct auth_verifier *av, struct request *r)
{
    for (struct request **p = &av->delayed; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

static void delayed_failure(evutil_socket_t fd, short what, void *arg)
{
    struct request *r = arg;

    (void)fd;
    (void)what;
    unlink_delayed(r->av, r);
    answer(r->av, r, AUTH_FAILED, NULL);
}

/* A verdict from the thread, on the loop. */
static void finish(struct auth_verifier *av, struct request *r)
{
    time_t now = time(NULL);
    struct timeval tv = { (time_t)av->sc->auth_failure_delay, 0 };

    if (r->forced >= 0) {
        answer(av, r, (enum auth_verdict)r->forced, NULL);
        return;
    }
    av->pending--;
    if (r->ok) {
        struct failure *f = failure_slot(av, r->req.client, false);
        if (f != NULL)
            memset(f, 0, sizeof(*f));
        answer(av, r, AUTH_OK, r->req.user);
        return;
    }
    note_failure(av, r->req.client, now);
    r->delay = evtimer_new(av->base, delayed_failure, r);
    if (r->delay == NULL || evtimer_add(r->delay, &tv) != 0) {
        answer(av, r, AUTH_FAILED, NULL);
        return;
    }
    r->next = av->delayed;
    av->delayed = r;
}

static void pipe_read(evutil_socket_t fd, short what, void *arg)
{
    struct auth_verifier *av = arg;
    char buf[64];
    struct request *list;

    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&av->lock);
    list = av->done;
    av->done = NULL;
    pthread_mutex_unlock(&av->lock);
    while (list != NULL) {
        struct request *next = list->next;
        finish(av, list);
        list = next;
    }
}

void auth_verifier_check(struct auth_verifier *av, unsigned long serial,
                         struct auth_request *req)
{
    struct request *r = xcalloc(1, sizeof(*r));

    r->serial = serial;
    r->av = av;
    r->req = *req;
    r->forced = -1;
    explicit_bzero(req->password, sizeof(req->password));
    if (locked_out(av, r->req.client, time(NULL)))
        r->forced = AUTH_LOCKED;
    else if (av->pending >= AUTH_MAX_PENDING)
        r->forced = AUTH_TEMPFAIL;
    if (r->forced >= 0) {
        /* Answered from the loop, like every verdict: never inside the
         * caller's handling of the request. */
        explicit_bzero(r->req.password, sizeof(r->req.password));
        pthread_mutex_lock(&av->lock);
        post_done(av, r);
        pthread_mutex_unlock(&av->lock);
        return;
    }
    av->pending++;
    pthread_mutex_lock(&av->lock);
    if (av->todo_tail)
        av->todo_tail->next = r;
    else
        av->todo = r;
    av->todo_tail = r;
    pthread_cond_signal(&av->wake);
    pthread_mutex_unlock(&av->lock);
}

void auth_verifier_set_users(struct auth_verifier *av, struct credentials *c)
{
    struct credentials *old;

    pthread_mutex_lock(&av->lock);
    old = av->users;
    av->users = c;
    pthread_mutex_unlock(&av->lock);
    credentials_free(old);
}

struct auth_verifier *auth_verifier_new(struct event_base *base,
                                        const struct submission_config *sc, auth_done_cb cb,
                                        void *arg)
{
    struct auth_verifier *av = xcalloc(1, sizeof(*av));
    int fds[2];

    av->base = base;
    av->sc = sc;
    av->cb = cb;
    av->arg = arg;
    pthread_mutex_init(&av->lock, NULL);
    pthread_cond_init(&av->wake, NULL);
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(av);
        return NULL;
    }
    av->pipe_rd = fds[0];
    av->pipe_wr = fds[1];
    av->pipe_ev = event_new(base, av->pipe_rd, EV_READ | EV_PERSIST, pipe_read, av);
    if (av->pipe_ev == NULL || event_add(av->pipe_ev, NULL) != 0 ||
        pthread_create(&av->thread, NULL, crypt_thread, av) != 0) {
        if (av->pipe_ev)
            event_free(av->pipe_ev);
        close(av->pipe_rd);
        close(av->pipe_wr);
        free(av);
        return NULL;
    }
    return av;
}

void auth_verifier_free(struct auth_verifier *av)
{
    struct request *lists[3];

    if (av == NULL)
        return;
    pthread_mutex_lock(&av->lock);
    av->stop = true;
    pthread_cond_signal(&av->wake);
    pthread_mutex_unlock(&av->lock);
    pthread_join(av->thread, NULL);
    lists[0] = av->todo;
    lists[1] = av->done;
    lists[2] = av->delayed;
    for (int k = 0; k < 3; k++) {
        for (struct request *r = lists[k], *next; r; r = next) {
            next = r->next;
            if (r->delay)
                event_free(r->delay);
            explicit_bzero(r, sizeof(*r));
            free(r);
        }
    }
    event_free(av->pipe_ev);
    close(av->pipe_rd);
    close(av->pipe_wr);
    credentials_free(av->users);
    free(av);
}
