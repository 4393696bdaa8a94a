/*
 * gw_http.c — the gateway's HTTP transport: libmicrohttpd (MHD) glue,
 * connections, request bodies, deadlines, writing replies. The routes
 * (what a request means) are gw_routes.c's, behind gw_http.h.
 *
 * Why MHD. The gateway used nng's own HTTP server before, which has
 * no deadline for a request's head, no connection cap (1,000 half-sent
 * heads held 1,000 fds as long as their clients liked), drops a too
 * large head without an answer, answers chunked bodies 411 and has no
 * WebSocket; none of it can be added without patching nng. Of Debian
 * 12's maintained HTTP servers: libmicrohttpd 0.9.75 has a connection
 * cap, an idle timeout, a per-connection memory bound answered 431,
 * chunked uploads, keep-alive, suspend/resume for answering from
 * another thread, and HTTP Upgrade (for WebSocket with libwslay); h2o
 * 2.2.5 is the 2017 branch (its library API unstable, libuv or its own
 * loop to drive); libwebsockets 4.1.6 does all of it but as a framework
 * owning the event loop with its own per-connection state machine.
 * nng stays for the workers (gw_pool.c, gw_invoke.c).
 * (docs/http-api.md, "Limits and timeouts", has the comparison.)
 *
 * Threads: MHD runs its own polling threads (epoll, one per CPU up to
 * 4); the access handler runs there and never blocks: a reply that
 * needs a worker is awaited with the connection suspended, and the
 * thread that has the reply (an nng one) resumes it. The handshake is
 * c->astate: the handler suspends unless the reply is already there;
 * gw_http_reply resumes only a connection the handler suspended.
 *
 * Limits: --max-connections is MHD's cap (past it MHD stops accepting:
 * new connections wait in the kernel's listen queue); --max-header-bytes
 * bounds the connection's memory pool, so a larger head gets 431 from
 * MHD; --idle-timeout-ms is MHD's inactivity timeout (whole seconds).
 * The deadlines MHD has not — the whole head within --header-timeout-ms
 * (for a later request on a kept-alive connection: within the idle
 * timeout plus that), the body within --body-timeout-ms — and the
 * clients that close their connection while their run is in flight
 * (MHD does not watch a suspended connection) are the sweeper's: every
 * SWEEP_MS it goes over the connections (a list kept from MHD's
 * connection notifications, under conns_mtx; MHD closes a socket only
 * after telling us, so every fd on the list is open). A late head or
 * body gets a 408 written on the socket (MHD writes nothing while it
 * reads) and the socket shut down, which MHD then sees and closes; a
 * client gone mid-run has its invocation aborted (the runs are
 * cancelled on their workers, gw_invoke_abort).
 *
 * A request's body: Content-Length is taken from --max-inflight-bodies
 * before it is read, a chunked body grows its share as it comes; both
 * are given back when the call ends. A route that answers in the first
 * call of a request with a body makes MHD close the connection after
 * the reply (so the body is never parsed as the next request); without
 * a body the reply waits for the next call, keeping the connection.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "gw_http.h"
#include "log.h"

#include <nng/supplemental/util/platform.h>

enum { BODY_READING, BODY_DONE, BODY_TIMED_OUT };
enum { A_HANDLER, A_SUSPENDED, A_REPLIED, A_QUEUED };
enum { P_HEAD, P_BODY, P_BUSY, P_IDLE, P_DEAD };
#define SWEEP_MS 100   /* granularity of the deadlines */
#define POOL_SLACK 4096 /* a connection's memory beyond --max-header-bytes */
#define MAX_THREADS 4

/* One client connection, from MHD's STARTED to its CLOSED notification. */
typedef struct gw_conn {
	int fd;
	int phase;        /* P_*, under conns_mtx */
	int64_t deadline; /* of the head (P_HEAD, P_IDLE) or the body (P_BODY) */
	gw_call *call;    /* the request in progress, if any */
	struct gw_conn *prev, *next;
} gw_conn;

static struct MHD_Daemon **daemons;
static size_t ndaemons;
static bool draining;
static nng_mtx *conns_mtx;
static gw_conn *conns;
static nng_aio *sweep_aio;

void gw_http_set_draining(void) { draining = true; }
bool gw_http_draining(void) { return draining; }

/* ---- calls ------------------------------------------------------------- */

static void call_unref(gw_call *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	gw_route_end(c);
	if (c->resp)
		MHD_destroy_response(c->resp);
	free(c->body);
	if (c->reserved)
		gw_mem_release(c->reserved);
	free(c);
}

const char *gw_call_header(gw_call *c, const char *name)
{
	return MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, name);
}

void gw_call_add_header(gw_call *c, const char *name, const char *value)
{
	if (c->nhdrs == GW_CALL_HDRS)
		return;
	c->hdrs[c->nhdrs].name = name;
	snprintf(c->hdrs[c->nhdrs].value, GW_CALL_HDR_MAX, "%s", value);
	c->nhdrs++;
}

/* Under conns_mtx when c->gc may be shared. */
static void set_phase(gw_call *c, int phase, int64_t deadline)
{
	nng_mtx_lock(conns_mtx);
	if (c->gc) {
		c->gc->phase = phase;
		c->gc->deadline = deadline;
	}
	nng_mtx_unlock(conns_mtx);
}

/* ---- replies ----------------------------------------------------------- */

static void log_line(gw_call *c, int status, const char *extra)
{
	char qpath[200], qmethod[40];
	c->logged = true;
	cr_log("info", "request", "method=%s path=%s status=%d ms=%lld runtime=%s%s%s",
	       cr_log_quote(qmethod, sizeof(qmethod), c->method),
	       cr_log_quote(qpath, sizeof(qpath), c->path), status,
	       (long long)(gw_now_ms() - c->t0), c->runtime ? c->runtime : "-", extra ? " " : "",
	       extra ? extra : "");
}

static struct MHD_Response *build(gw_call *c, int status, char *body, size_t len,
                                  const char *ctype, int retry_after)
{
	struct MHD_Response *r = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
	                              : MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return NULL;
	}
	if (ctype)
		MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", retry_after);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	for (size_t i = 0; i < c->nhdrs; i++)
		MHD_add_response_header(r, c->hdrs[i].name, c->hdrs[i].value);
	if (c->close || status == 499)
		MHD_add_response_header(r, "Connection", "close");
	return r;
}

void gw_http_reply(gw_call *c, int status, char *body, size_t len, const char *ctype,
                   int retry_after, const char *extra_log)
{
	c->resp = build(c, status, body, len, ctype, retry_after);
	c->status = status;
	gw_metric_http(c->metric ? c->metric : "other", status);
	log_line(c, status, extra_log);
	if (atomic_exchange(&c->astate, A_REPLIED) == A_SUSPENDED)
		MHD_resume_connection(c->conn);
}

void gw_http_json(gw_call *c, int status, json_t *j, int retry_after, const char *extra_log)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		s = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"could not render the reply\"}}");
		status = 500;
	}
	size_t len = s ? strlen(s) : 0;
	gw_http_reply(c, status, s, len, "application/json", retry_after, extra_log);
}

char *gw_http_error_text(gw_call *c, const char *code, const char *msg)
{
	json_t *j = gw_json_error(code, msg);
	if (c->piston) /* Piston clients read a top-level message */
		json_object_set_new(j, "message", json_string(msg));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

void gw_http_error(gw_call *c, int status, const char *code, const char *msg, int retry_after)
{
	char extra[320];
	snprintf(extra, sizeof(extra), "error=%s", code);
	char *s = gw_http_error_text(c, code, msg);
	gw_http_reply(c, status, s, s ? strlen(s) : 0, "application/json", retry_after, extra);
}

/* Hands the reply to MHD (in its thread). */
static enum MHD_Result queue(gw_call *c)
{
	atomic_store(&c->astate, A_QUEUED);
	if (!c->resp)
		return MHD_NO; /* out of memory: close */
	enum MHD_Result rv = MHD_queue_response(c->conn, (unsigned)c->status, c->resp);
	MHD_destroy_response(c->resp);
	c->resp = NULL;
	return rv;
}

/* After a route ran: queue its reply, or wait for it suspended. */
static enum MHD_Result await_reply(gw_call *c)
{
	if (atomic_load(&c->astate) == A_REPLIED)
		return queue(c);
	MHD_suspend_connection(c->conn);
	int expect = A_HANDLER;
	if (!atomic_compare_exchange_strong(&c->astate, &expect, A_SUSPENDED))
		MHD_resume_connection(c->conn); /* it came meanwhile */
	return MHD_YES;
}

/* ---- bodies ------------------------------------------------------------ */

static void refuse(gw_call *c, int status, const char *code, const char *msg, int retry_after)
{
	c->close = true;
	gw_http_error(c, status, code, msg, retry_after);
}

static void overloaded(gw_call *c)
{
	gw_metric_inc(GW_M_REJECTED);
	refuse(c, 503, "overloaded", "the gateway holds as many request bodies as it may "
	       "(--max-inflight-bodies); retry later", 1);
}

static void too_large(gw_call *c, const char *what)
{
	char msg[200];
	snprintf(msg, sizeof(msg), "the body is %s bytes; at most %zu are accepted", what,
	         gw_cfg.max_body);
	refuse(c, 413, "too_large", msg, 0);
}

/* Content-Length and friends; answers the request itself on error. */
static void take_body(gw_call *c)
{
	const char *te = gw_call_header(c, "Transfer-Encoding");
	const char *cl = gw_call_header(c, "Content-Length");
	if (te && strcasecmp(te, "chunked")) {
		refuse(c, 501, "not_implemented",
		       "Transfer-Encoding other than chunked is not supported", 0);
		return;
	}
	if (te)
		return; /* chunked: its share is taken as it comes */
	unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0; /* MHD checked it */
	if (len > gw_cfg.max_body) {
		char n[32];
		snprintf(n, sizeof(n), "%llu", len);
		too_large(c, n);
		return;
	}
	if (len == 0)
		return;
	if (!gw_mem_reserve((size_t)len)) {
		overloaded(c);
		return;
	}
	c->reserved = c->body_cap = (size_t)len;
	if (!(c->body = malloc(len + 1)))
		refuse(c, 503, "out_of_memory", "the gateway is out of memory", 1);
}

/* Room for n more bytes of a chunked body; false when over a limit. */
static bool grow(gw_call *c, size_t n)
{
	size_t need = c->body_len + n;
	if (need <= c->body_cap)
		return true;
	if (need > gw_cfg.max_body) {
		c->too_large = true;
		return false;
	}
	size_t cap = c->body_cap * 2 > need ? c->body_cap * 2 : need;
	cap = cap > gw_cfg.max_body ? gw_cfg.max_body : cap;
	if (!gw_mem_reserve(cap - c->reserved)) {
		c->overloaded = true;
		return false;
	}
	char *nb = realloc(c->body, cap + 1);
	if (!nb) {
		gw_mem_release(cap - c->reserved);
		c->overloaded = true;
		return false;
	}
	c->reserved = cap;
	c->body = nb;
	c->body_cap = cap;
	return true;
}

static enum MHD_Result body_chunk(gw_call *c, const char *data, size_t *size)
{
	if (atomic_load(&c->body_state) != BODY_READING)
		return MHD_NO; /* the sweeper answered 408 */
	if (!c->too_large && !c->overloaded && grow(c, *size)) {
		memcpy(c->body + c->body_len, data, *size);
		c->body_len += *size;
	}
	*size = 0; /* past a limit the rest is read and dropped, then answered */
	return MHD_YES;
}

static enum MHD_Result body_end(gw_call *c)
{
	int expect = BODY_READING;
	if (!atomic_compare_exchange_strong(&c->body_state, &expect, BODY_DONE))
		return MHD_NO;
	set_phase(c, P_BUSY, 0);
	if (c->too_large)
		too_large(c, "more than that");
	else if (c->overloaded)
		overloaded(c);
	else
		gw_route_body(c);
	return await_reply(c);
}

/* ---- the access handler ------------------------------------------------ */

static gw_call *call_new(struct MHD_Connection *conn, const char *url, const char *method)
{
	gw_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->conn = conn;
	atomic_init(&c->refs, 1);
	c->t0 = gw_now_ms();
	size_t plen = strcspn(url, "?#");
	snprintf(c->path, sizeof(c->path), "%.*s", (int)(plen < 127 ? plen : 127), url);
	while (strlen(c->path) > 1 && c->path[strlen(c->path) - 1] == '/')
		c->path[strlen(c->path) - 1] = 0;
	snprintf(c->method, sizeof(c->method), "%s", method);
	const char *cl = gw_call_header(c, "Content-Length");
	c->has_body = (cl && strcmp(cl, "0")) || gw_call_header(c, "Transfer-Encoding");
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	c->gc = ci ? ci->socket_context : NULL;
	return c;
}

static enum MHD_Result first_call(struct MHD_Connection *conn, const char *url,
                                  const char *method, void **con_cls)
{
	gw_call *c = call_new(conn, url, method);
	if (!c)
		return MHD_NO;
	*con_cls = c;
	nng_mtx_lock(conns_mtx);
	if (c->gc)
		c->gc->call = c;
	nng_mtx_unlock(conns_mtx);
	c->close = c->has_body; /* a refused request's body is never read */
	if (gw_route_head(c)) {
		c->close = false;
		take_body(c);
	}
	if (atomic_load(&c->astate) == A_REPLIED)
		/* with a body, MHD closes the connection after it; without,
		 * the next call takes it and the connection is kept */
		return c->has_body ? queue(c) : MHD_YES;
	if (c->has_body)
		set_phase(c, P_BODY, gw_now_ms() + gw_cfg.body_timeout_ms);
	else
		set_phase(c, P_BUSY, 0);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *data, size_t *size, void **con_cls)
{
	(void)cls;
	(void)version;
	gw_call *c = *con_cls;
	if (!c)
		return first_call(conn, url, method, con_cls);
	if (atomic_load(&c->astate) == A_REPLIED)
		return queue(c);
	if (*size)
		return body_chunk(c, data, size);
	return body_end(c);
}

/* A request is over (answered, or its connection failed). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	gw_call *c = *con_cls;
	if (!c)
		return;
	*con_cls = NULL;
	nng_mtx_lock(conns_mtx);
	if (c->gc) {
		c->gc->call = NULL;
		if (c->gc->phase != P_DEAD) {
			c->gc->phase = P_IDLE;
			c->gc->deadline = gw_now_ms() + gw_cfg.idle_timeout_ms + gw_cfg.header_timeout_ms;
		}
	}
	nng_mtx_unlock(conns_mtx);
	if (!c->logged)
		log_line(c, 0, toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "error=idle_timeout"
		                                                              : "error=body_read_failed");
	call_unref(c);
}

/* ---- connections and the sweeper --------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	gw_conn *gc = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(gc = calloc(1, sizeof(*gc))))
			return; /* then it has no deadline of ours, only MHD's */
		gc->fd = ci->connect_fd;
		gc->phase = P_HEAD;
		gc->deadline = gw_now_ms() + gw_cfg.header_timeout_ms;
		nng_mtx_lock(conns_mtx);
		gc->next = conns;
		if (conns)
			conns->prev = gc;
		conns = gc;
		nng_mtx_unlock(conns_mtx);
		*socket_context = gc;
		return;
	}
	if (!gc)
		return;
	nng_mtx_lock(conns_mtx);
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		conns = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	if (gc->call)
		gc->call->gc = NULL;
	nng_mtx_unlock(conns_mtx);
	free(gc);
	*socket_context = NULL;
}

/* Writes a 408 on gc's socket and shuts it down (under conns_mtx: the
 * socket is open). MHD is only reading then: it writes nothing. */
static void send_408(gw_conn *gc, gw_call *c, const char *code, const char *msg)
{
	char *body = c ? gw_http_error_text(c, code, msg) : NULL;
	if (!body) {
		json_t *j = gw_json_error(code, msg);
		body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	}
	char head[4096];
	size_t blen = body ? strlen(body) : 0;
	int n = snprintf(head, sizeof(head), "HTTP/1.1 408 Request Timeout\r\nContent-Type: "
	                 "application/json\r\nCache-Control: no-store\r\nConnection: close\r\n"
	                 "Content-Length: %zu\r\n", blen);
	for (size_t i = 0; c && i < c->nhdrs && n > 0 && (size_t)n < sizeof(head); i++)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "%s: %s\r\n", c->hdrs[i].name,
		              c->hdrs[i].value);
	if (n > 0 && (size_t)n + 2 < sizeof(head)) {
		memcpy(head + n, "\r\n", 2);
		if (send(gc->fd, head, (size_t)n + 2, MSG_DONTWAIT | MSG_NOSIGNAL) == n + 2 && body)
			(void)!send(gc->fd, body, blen, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	free(body);
	shutdown(gc->fd, SHUT_RDWR);
	gc->phase = P_DEAD;
}

static void head_late(gw_conn *gc)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "the request head did not arrive within %d ms "
	         "(--header-timeout-ms)", gw_cfg.header_timeout_ms);
	send_408(gc, NULL, "header_timeout", msg);
	gw_metric_http("other", 408);
	cr_log("info", "request", "method=- path=- status=408 error=header_timeout");
}

static void body_late(gw_conn *gc, gw_call *c)
{
	int expect = BODY_READING;
	if (!atomic_compare_exchange_strong(&c->body_state, &expect, BODY_TIMED_OUT))
		return;
	char msg[200];
	snprintf(msg, sizeof(msg), "the body did not arrive within %d ms (truncated body?)",
	         gw_cfg.body_timeout_ms);
	send_408(gc, c, "body_timeout", msg);
	gw_metric_http(c->metric ? c->metric : "other", 408);
	log_line(c, 408, "error=body_timeout");
}

/* A suspended call's client closed its side (or reset). */
static bool client_gone(gw_conn *gc)
{
	gw_call *c = gc->call;
	if (!c || c->gone || atomic_load(&c->astate) != A_SUSPENDED)
		return false;
	struct pollfd p = { .fd = gc->fd, .events = POLLRDHUP };
	if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return false;
	c->gone = true;
	atomic_fetch_add(&c->refs, 1); /* the sweeper's, past conns_mtx */
	return true;
}

/* Under conns_mtx: gc's deadline or client checks; a gone call's
 * reference is added to *gone. */
static void sweep_one(gw_conn *gc, int64_t now, gw_call **gone, size_t *ngone, size_t max)
{
	if ((gc->phase == P_HEAD || gc->phase == P_IDLE) && gc->deadline <= now)
		head_late(gc);
	else if (gc->phase == P_BODY && gc->call && gc->deadline <= now)
		body_late(gc, gc->call);
	else if (gc->phase == P_BUSY && *ngone < max && client_gone(gc))
		gone[(*ngone)++] = gc->call;
}

static void sweep(void *arg)
{
	(void)arg;
	if (nng_aio_result(sweep_aio) != 0)
		return; /* stopped */
	gw_call *gone[64];
	size_t ngone = 0;
	int64_t now = gw_now_ms();
	nng_mtx_lock(conns_mtx);
	for (gw_conn *gc = conns; gc; gc = gc->next)
		sweep_one(gc, now, gone, &ngone, sizeof(gone) / sizeof(gone[0]));
	nng_mtx_unlock(conns_mtx);
	for (size_t i = 0; i < ngone; i++) {
		gw_route_client_gone(gone[i]);
		call_unref(gone[i]);
	}
	nng_sleep_aio(SWEEP_MS, sweep_aio);
}

/* ---- start/stop -------------------------------------------------------- */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[400], q[420];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	cr_log("warn", "http", "error=%s", cr_log_quote(q, sizeof(q), msg));
}

static bool loopback(const char *h)
{
	return !strcmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1") ||
	       !strcmp(h, "[::1]");
}

static unsigned threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (unsigned)n;
}

static struct MHD_Daemon *daemon_start(const struct addrinfo *ai)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	unsigned idle_s = (unsigned)((gw_cfg.idle_timeout_ms + 999) / 1000);
	unsigned nthreads = threads();
	unsigned cap = (unsigned)gw_cfg.max_connections;
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
	                        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	                        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	                        MHD_OPTION_STRICT_FOR_CLIENT, 1, /* e.g. HTTP/1.1 needs Host */
	                        MHD_OPTION_CONNECTION_LIMIT, cap,
	                        MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
	                        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	                        (size_t)gw_cfg.max_header_bytes + POOL_SLACK,
	                        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
	                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
	                        MHD_OPTION_THREAD_POOL_SIZE, cap >= nthreads ? nthreads : 1u,
	                        MHD_OPTION_END);
}

static int listen_fail(const char *url_s, const char *why)
{
	char q[300];
	cr_log("error", "start", "listen=%s error=%s", url_s, cr_log_quote(q, sizeof(q), why));
	return -1;
}

static int listen_one(const char *url_s)
{
	nng_url *url;
	if (nng_url_parse(&url, url_s) != 0 || strcmp(url->u_scheme, "http"))
		return listen_fail(url_s, "not an http://HOST:PORT URL");
	if (!loopback(url->u_hostname) && gw_cfg.napi_keys == 0 && !gw_cfg.insecure_no_auth) {
		nng_url_free(url);
		return listen_fail(url_s, "listening beyond loopback needs --api-keys (or --insecure-no-auth)");
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	const char *host = url->u_hostname[0] ? url->u_hostname : NULL;
	int rv = getaddrinfo(host, url->u_port, &hints, &ai);
	nng_url_free(url);
	if (rv != 0)
		return listen_fail(url_s, gai_strerror(rv));
	struct MHD_Daemon *d = daemon_start(ai);
	freeaddrinfo(ai);
	struct MHD_Daemon **nd = d ? realloc(daemons, (ndaemons + 1) * sizeof(*nd)) : NULL;
	if (!nd)
		return listen_fail(url_s, "cannot listen there (address in use? see the warning above)");
	daemons = nd;
	daemons[ndaemons++] = d;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	cr_log("info", "listening", "url=%s port=%d max_connections=%d", url_s,
	       di ? (int)di->port : 0, gw_cfg.max_connections);
	return 0;
}

/* Room for --max-connections sockets, the workers' and a margin. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)gw_cfg.max_connections * gw_cfg.nlisten + 256;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		cr_log("warn", "start", "error=\"open files limited to %llu: fewer than "
		       "--max-connections may be served\"", (unsigned long long)rl.rlim_cur);
}

int gw_http_start(void)
{
	int rv;
	if ((rv = nng_mtx_alloc(&conns_mtx)) != 0 || (rv = nng_aio_alloc(&sweep_aio, sweep, NULL)) != 0) {
		cr_log("error", "cannot start", "error=\"%s\"", nng_strerror(rv));
		return -1;
	}
	raise_fd_limit();
	nng_sleep_aio(SWEEP_MS, sweep_aio);
	for (size_t i = 0; i < gw_cfg.nlisten; i++)
		if (listen_one(gw_cfg.listen[i]) < 0)
			return -1;
	return 0;
}

void gw_http_stop(void)
{
	if (sweep_aio)
		nng_aio_stop(sweep_aio);
	/* MHD must not be stopped with a connection suspended: when a run
	 * outlived --drain-ms, its connection dies with the process */
	if (gw_metric_inflight_get() > 0)
		return;
	for (size_t i = 0; i < ndaemons; i++)
		MHD_stop_daemon(daemons[i]);
}
