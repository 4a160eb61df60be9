/*
 * aioguest.h - the C ABI of libaioguest, the Go core of aioguest.
 *
 * Two objects live behind opaque handles:
 *
 *   poller   a kernel readiness queue (epoll on Linux) plus a wake-up
 *            channel (eventfd).  One thread may register, modify and
 *            remove file descriptors while another is blocked in
 *            ag_poller_wait().  At most one wait runs at a time.
 *
 *   handoff  the protocol between a host thread and a worker thread
 *            sharing one poller: the host asks for "wait at most T"
 *            (ag_handoff_request), the worker performs that wait
 *            (ag_handoff_next returns once results are ready, which is
 *            the moment to notify the host), the host collects the
 *            events on its own thread (ag_handoff_take).
 *
 * Conventions, for every function below:
 *   - The return value is >= 0 on success and negative on failure.
 *   - A failure in the range -1 .. -4095 is an OS error: -errno.
 *   - A failure <= AG_ERR_BASE is one of the AG_E* codes below.
 *   - On failure, if err != NULL and errlen > 0, a NUL-terminated UTF-8
 *     message (truncated to errlen-1 bytes) is written to err.  On success
 *     err is left untouched.
 *   - No Go panic ever crosses this boundary: it becomes AG_EINTERNAL.
 *   - Handles are validated on every call: NULL, unknown, closed or
 *     wrong-kind handles give AG_EBADHANDLE.  (A handle's address may be
 *     reused after close; callers must drop handles they closed.)
 *   - Timeouts are in nanoseconds; a negative timeout means "no limit",
 *     zero means "poll without blocking".  Waits are rounded up to the
 *     kernel's granularity (1 ms for epoll_wait), never down, so a wait
 *     never ends before its deadline unless woken.  Enormous timeouts are
 *     allowed (the wait is resumed until the deadline).
 */
#ifndef AIOGUEST_H
#define AIOGUEST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AG_ABI_VERSION 2

/* Interest / readiness flags (same values as Python's selectors module). */
#define AG_READ  1u
#define AG_WRITE 2u

/* Error codes (negative; OS errors are -errno and lie above AG_ERR_BASE). */
#define AG_ERR_BASE     (-10000)
#define AG_EINVAL       (-10001) /* bad argument: fd < 0, bad flags, cap < 0, NULL out-pointer */
#define AG_EBADHANDLE   (-10002) /* NULL, unknown, closed or wrong-kind handle */
#define AG_EEXIST       (-10003) /* fd already registered */
#define AG_ENOENT       (-10004) /* fd not registered */
#define AG_EBUSY        (-10005) /* a wait is already outstanding */
#define AG_ECLOSED      (-10006) /* the object was closed (e.g. while waiting) */
#define AG_EUNSUPPORTED (-10007) /* no poller implementation for this OS */
#define AG_EINTERNAL    (-10008) /* recovered Go panic or broken invariant */

/*
 * One readiness record, as written into caller-owned buffers.
 * 16 bytes, little-endian on every supported platform, no padding surprises:
 *   fd      the file descriptor (a SOCKET on Windows, hence 64 bits)
 *   events  AG_READ | AG_WRITE; an error or hang-up condition is reported
 *           as both flags, as Python's selectors do, so the reader and the
 *           writer of the fd both get a chance to see the error
 *   tag     the tag given when the fd was (re)registered or last modified;
 *           lets the caller drop stale records of an fd that was removed
 *           and registered again while a wait was in flight
 */
typedef struct ag_event {
    int64_t  fd;
    uint32_t events;
    uint32_t tag;
} ag_event;

/* Returns AG_ABI_VERSION. Never fails. */
int ag_abi_version(void);

/* ---- poller ---------------------------------------------------------- */

/* Creates a poller; stores its handle in *out. */
int ag_poller_open(void **out, char *err, size_t errlen);

/* Closes the poller: wakes a thread blocked in ag_poller_wait (which then
 * returns AG_ECLOSED), waits for it to leave, then releases the kernel
 * objects.  A second close gives AG_EBADHANDLE.  Closing a poller that a
 * handoff still uses gives AG_EBUSY. */
int ag_poller_close(void *poller, char *err, size_t errlen);

/* Registration.  events must be a non-empty subset of AG_READ|AG_WRITE.
 * add: AG_EEXIST if fd is registered; modify/remove: AG_ENOENT if not.
 * Kernel refusals come back as -errno (-EBADF for a closed fd, -EPERM for
 * a regular file on Linux). */
int ag_poller_add(void *poller, int64_t fd, uint32_t events, uint32_t tag, char *err, size_t errlen);
int ag_poller_modify(void *poller, int64_t fd, uint32_t events, uint32_t tag, char *err, size_t errlen);
int ag_poller_remove(void *poller, int64_t fd, char *err, size_t errlen);

/* Blocks the calling thread until at least one registered fd is ready,
 * the timeout passes, or ag_poller_wake is called; writes up to cap
 * records to buf and returns how many (0 on timeout or wake-up).
 * AG_EBUSY if another wait (or a handoff wait) is in progress.
 * -EINTR if a signal interrupted the wait: the caller runs its signal
 * handlers and waits again for the time left (as Python's selectors do,
 * PEP 475); the handoff's worker, which has no handlers to run, retries
 * by itself. */
int ag_poller_wait(void *poller, ag_event *buf, int32_t cap, int64_t timeout_ns, char *err, size_t errlen);

/* Makes the current (or, if none, the next) wait return promptly.
 * Safe from any thread; wake-ups are coalesced. */
int ag_poller_wake(void *poller, char *err, size_t errlen);

/* Returns a file descriptor that polls readable whenever ag_poller_wait
 * would return at once (a registered fd is ready, or a wake-up is
 * pending), so a host loop can watch the poller itself and then collect
 * with ag_poller_wait(timeout_ns = 0), with no thread in between.  The
 * descriptor belongs to the poller: don't close it; it is gone after
 * ag_poller_close.  AG_EUNSUPPORTED where the OS has no such descriptor. */
int ag_poller_fd(void *poller, char *err, size_t errlen);

/* ---- handoff --------------------------------------------------------- */

/* Creates a handoff bound to poller (which must stay open until the
 * handoff is closed). */
int ag_handoff_open(void *poller, void **out, char *err, size_t errlen);

/* Shuts the handoff down without releasing the handle: a worker blocked
 * in ag_handoff_next returns 0, an outstanding wait is cut short, and every
 * later ag_handoff_next returns 0 at once; request gives AG_ECLOSED.
 * Idempotent.  This is the step to take before joining the worker thread:
 * the handle stays valid, so a worker that is between two ag_handoff_next
 * calls can never call into a released (and possibly reused) handle. */
int ag_handoff_shutdown(void *handoff, char *err, size_t errlen);

/* Shuts the handoff down (if not done yet) and releases the handle.
 * Call it only once no thread can still use the handle (join the worker
 * first).  A second close gives AG_EBADHANDLE. */
int ag_handoff_close(void *handoff, char *err, size_t errlen);

/* Host: asks the worker to wait at most timeout_ns for up to max_events
 * records.  AG_EBUSY if a request is outstanding or its results have not
 * been taken yet (there is never more than one wait in flight). */
int ag_handoff_request(void *handoff, int64_t timeout_ns, int32_t max_events, char *err, size_t errlen);

/* Host: ag_handoff_request whose results the worker delivers itself:
 * the wait writes up to cap records straight into buf, and
 * ag_handoff_next returns 2 + their number with the handoff idle again,
 * so the host needs no ag_handoff_take (and makes no call into the
 * library between being notified and using the records).  buf must stay
 * valid, and untouched by the host, until the host is notified or the
 * handoff is shut down.  A wait that fails is still collected with
 * ag_handoff_take (ag_handoff_next returns 1).  AG_EINVAL after
 * ag_handoff_spawn: that worker's notification carries no count. */
int ag_handoff_request_into(void *handoff, int64_t timeout_ns, ag_event *buf, int32_t cap, char *err, size_t errlen);

/* Worker: blocks until a request arrives, performs the wait on the
 * calling thread, and returns 1 (results stored; the host collects them
 * with ag_handoff_take) or, after ag_handoff_request_into, 2 + the number
 * of records delivered into the host's buffer: either way the caller must
 * now notify the host (exactly once per request).  Returns 0 once the
 * handoff is closed; the worker should then exit. */
int ag_handoff_next(void *handoff, char *err, size_t errlen);

/* Host: if the worker's results are ready, copies up to cap records into
 * buf, returns how many (records beyond cap are dropped: readiness is
 * level-triggered, so the kernel reports them again), and makes the
 * handoff idle again.  AG_EBUSY if a wait is still outstanding; 0 if idle. */
int ag_handoff_take(void *handoff, ag_event *buf, int32_t cap, char *err, size_t errlen);

/* Any thread: cuts an outstanding (or requested, not yet started) wait
 * short; a no-op when idle, when results are ready, or after shutdown (a
 * wake racing with shutdown is harmless, not an error).  Coalesced. */
int ag_handoff_wake(void *handoff, char *err, size_t errlen);

/* Starts a Go-owned, OS-locked thread that runs ag_handoff_next in a loop
 * and calls notify(arg) after each completed wait; it exits when the
 * handoff is shut down.  The alternative notification path measured in
 * docs/design.md.  AG_EBUSY if one was already started (or a worker is in
 * ag_handoff_next).  This thread cannot be joined by the caller, so
 * ag_handoff_close joins it: once close returns, notify(arg) is over and
 * arg may be freed.  notify must therefore not wait for the thread that
 * calls ag_handoff_close (it may call ag_handoff_close itself, which then
 * does not wait).  ag_handoff_shutdown never waits. */
typedef void (*ag_notify_fn)(void *arg);
int ag_handoff_spawn(void *handoff, ag_notify_fn notify, void *arg, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* AIOGUEST_H */
