/* End-to-end smoke test of libaioguest through its C header: run by
 * capi_test.go against a freshly built library.  Exits 0 and prints "ok"
 * on success; any failed check prints the line and exits 1. */
#include "aioguest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

static char err[256];

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- worker thread calling ag_handoff_next ---- */

static int notified;

static void *worker(void *h) {
    int rc;
    while ((rc = ag_handoff_next(h, err, sizeof err)) == 1)
        __atomic_fetch_add(&notified, 1, __ATOMIC_SEQ_CST);
    return (void *)(intptr_t)rc;
}

/* ---- spawned thread notifications ---- */

static int counted;
static void count(void *arg) { __atomic_fetch_add((int *)arg, 1, __ATOMIC_SEQ_CST); }

static int self_closed = 1; /* becomes the close result */
static void *self_handle;
static void close_from_notify(void *arg) {
    (void)arg;
    char e[64];
    /* Closing from inside notify must not wait for this very thread. */
    __atomic_store_n(&self_closed, ag_handoff_close(self_handle, e, sizeof e), __ATOMIC_SEQ_CST);
}

static int wait_for(int *p, int want) {
    for (int i = 0; i < 10000; i++) {
        if (__atomic_load_n(p, __ATOMIC_SEQ_CST) == want)
            return 1;
        sleep_ms(1);
    }
    return 0;
}

int main(void) {
    alarm(30); /* never hang the test run */
    CHECK(ag_abi_version() == AG_ABI_VERSION);
    CHECK(sizeof(ag_event) == 16);

    /* Errors and the message buffer. */
    CHECK(ag_poller_close(NULL, err, sizeof err) == AG_EBADHANDLE);
    CHECK(strstr(err, "ag_poller_close") != NULL);
    char small[8];
    memset(small, 'x', sizeof small);
    CHECK(ag_poller_wake(NULL, small, sizeof small) == AG_EBADHANDLE);
    CHECK(strlen(small) == sizeof small - 1);
    small[0] = 'x';
    CHECK(ag_poller_wake(NULL, small, 1) == AG_EBADHANDLE);
    CHECK(small[0] == '\0');
    CHECK(ag_poller_wake(NULL, NULL, 0) == AG_EBADHANDLE);
    CHECK(ag_poller_open(NULL, err, sizeof err) == AG_EINVAL);

    void *p = NULL;
    CHECK(ag_poller_open(&p, err, sizeof err) == 0 && p != NULL);
    strcpy(err, "untouched");

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    CHECK(ag_poller_add(p, sv[0], AG_READ, 77, err, sizeof err) == 0);
    CHECK(strcmp(err, "untouched") == 0); /* success leaves err alone */
    CHECK(ag_poller_add(p, sv[0], AG_READ, 77, err, sizeof err) == AG_EEXIST);
    CHECK(ag_poller_add(p, -1, AG_READ, 0, err, sizeof err) == AG_EINVAL);
    CHECK(ag_poller_add(p, 9999, AG_READ, 0, err, sizeof err) == -9 /* EBADF */);

    ag_event ev[4];
    CHECK(ag_poller_wait(p, ev, 4, 0, err, sizeof err) == 0);
    CHECK(write(sv[1], "x", 1) == 1);
    CHECK(ag_poller_wait(p, ev, 4, -1, err, sizeof err) == 1);
    CHECK(ev[0].fd == sv[0] && ev[0].events == AG_READ && ev[0].tag == 77);
    CHECK(ag_poller_wake(p, err, sizeof err) == 0);
    CHECK(ag_poller_wait(p, NULL, 0, -1, err, sizeof err) == 0);
    char c;
    CHECK(read(sv[0], &c, 1) == 1);

    /* Handoff with a C worker thread. */
    void *h = NULL;
    CHECK(ag_handoff_open(p, &h, err, sizeof err) == 0);
    CHECK(ag_poller_close(p, err, sizeof err) == AG_EBUSY);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, h) == 0);
    CHECK(ag_handoff_request(h, 5000000000LL, 4, err, sizeof err) == 0);
    CHECK(write(sv[1], "y", 1) == 1);
    CHECK(wait_for(&notified, 1));
    CHECK(ag_handoff_take(h, ev, 4, err, sizeof err) == 1);
    CHECK(ev[0].fd == sv[0] && ev[0].tag == 77);
    CHECK(read(sv[0], &c, 1) == 1);
    CHECK(ag_handoff_request(h, -1, 4, err, sizeof err) == 0);
    CHECK(ag_handoff_wake(h, err, sizeof err) == 0);
    CHECK(wait_for(&notified, 2));
    CHECK(ag_handoff_take(h, ev, 4, err, sizeof err) == 0);
    CHECK(ag_handoff_request(h, -1, 4, err, sizeof err) == 0);
    CHECK(ag_handoff_shutdown(h, err, sizeof err) == 0);
    void *rc;
    CHECK(pthread_join(t, &rc) == 0 && rc == 0);
    CHECK(ag_handoff_next(h, err, sizeof err) == 0);
    CHECK(ag_handoff_request(h, 0, 4, err, sizeof err) == AG_ECLOSED);
    CHECK(ag_handoff_wake(h, err, sizeof err) == 0);
    CHECK(ag_handoff_close(h, err, sizeof err) == 0);
    CHECK(ag_handoff_close(h, err, sizeof err) == AG_EBADHANDLE);

    /* Spawned worker: close joins it. */
    CHECK(ag_handoff_open(p, &h, err, sizeof err) == 0);
    CHECK(ag_handoff_spawn(h, NULL, NULL, err, sizeof err) == AG_EINVAL);
    CHECK(ag_handoff_spawn(h, count, &counted, err, sizeof err) == 0);
    CHECK(ag_handoff_spawn(h, count, &counted, err, sizeof err) == AG_EBUSY);
    for (int i = 1; i <= 3; i++) {
        CHECK(ag_handoff_request(h, 1000000, 4, err, sizeof err) == 0);
        CHECK(wait_for(&counted, i));
        CHECK(ag_handoff_take(h, ev, 4, err, sizeof err) == 0);
    }
    CHECK(ag_handoff_request(h, -1, 4, err, sizeof err) == 0);
    CHECK(ag_handoff_close(h, err, sizeof err) == 0);
    CHECK(__atomic_load_n(&counted, __ATOMIC_SEQ_CST) == 3);

    /* Spawned worker whose notify closes the handoff. */
    CHECK(ag_handoff_open(p, &self_handle, err, sizeof err) == 0);
    CHECK(ag_handoff_spawn(self_handle, close_from_notify, NULL, err, sizeof err) == 0);
    CHECK(ag_handoff_request(self_handle, 0, 4, err, sizeof err) == 0);
    CHECK(wait_for(&self_closed, 0));

    CHECK(ag_poller_close(p, err, sizeof err) == 0);
    CHECK(ag_poller_close(p, err, sizeof err) == AG_EBADHANDLE);
    close(sv[0]);
    close(sv[1]);
    puts("ok");
    return 0;
}
