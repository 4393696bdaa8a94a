/*
 * gw_invoke.c — one invocation: which workers run it, and who wins.
 *
 * Modes (per request, the gateway's flags giving the default):
 *   race   send to two distinct workers at once (the default when the
 *          runtime has two healthy workers with a free slot);
 *   hedge  send to one, and to a second only when no reply came within
 *          hedge_ms (0: the runtime's observed p95), while the runtime's
 *          hedge budget allows: a hedge doubles the load of its request,
 *          so when latency rises above hedge_ms for every request (an
 *          overloaded pool) hedging everything would make it worse. Each
 *          hedged-mode invocation earns --hedge-budget % of a hedge, a
 *          burst of HEDGE_BURST may be spent ahead; past it the hedge is
 *          skipped (counted) and the first attempt runs alone;
 *   single race 1: one worker at a time.
 *
 * Each attempt is one REQ context on its worker's socket, with its own
 * run id ("<invocation>-<n>") so that a cancel names exactly one run.
 * Contexts and their aios are kept open per worker between requests
 * (lanes): opening one and reaping it per attempt or cancel woke nng's
 * reaper thread every time, on a 2-core machine a measurable share of
 * what the gateway adds to a request. A lane is reused only after a
 * reply (the context is then idle); after an error it is closed.
 * The first reply with ok:true wins; a bad_request (or unsupported)
 * reply is final at once, since any worker would say the same. busy,
 * internal, cancelled, transport errors and timeouts do not win: the
 * other attempt is awaited. The loser gets a `cancel` op at once and its
 * slot is released when its own (cancelled) reply arrives. When every
 * attempt failed, another worker is tried (--retries) while the
 * deadline allows; then 502 listing what happened. An attempt whose
 * worker went away under it (connection closed or reset, ejected) is
 * the worker's failure, not the request's: the retry after it draws on
 * a second allowance, one per worker of the runtime (so a request that
 * somehow killed workers still stops), and when no worker is healthy
 * the retry waits in the queue for one to come back (--queue-ms, the
 * deadline) instead of failing at once: a worker restarted by its
 * supervisor serves it. The deadline is
 * compile wall + run wall + slack, summed saturating (a worker's
 * advertised default may be anything), and every nng timeout derived
 * from it is clamped to nng_duration's range. A `busy` reply is
 * no failure of the request and costs no retry: the worker counts as
 * full until its next ping and the invocation waits for a slot. An
 * attempt that reaches the deadline is cancelled on its worker, which
 * would otherwise keep a slot for a reply nobody waits for.
 *
 * No free slot anywhere: the invocation waits in its runtime's FIFO
 * (bounded by --queue; full → 429) for at most --queue-ms (→ 503); a
 * finishing attempt or the health ticker lets the head proceed.
 *
 * Concurrency: all state is under gw_lock. Results are not handed to
 * the HTTP layer under the lock: finished invocations go on a pending
 * list that whoever holds the lock drains after unlocking
 * (gw_invoke_flush). A caller's handle (gw_invoke) is cleared under the
 * lock before its result is delivered, so that gw_invoke_abort (a client
 * that went away) is only ever called on a live invocation. An
 * invocation is freed when its last reference
 * (itself until delivered, each live attempt, each armed timer) goes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "log.h"

#define MAX_ATTEMPTS 24
#define HEDGE_BURST 10.0 /* hedges that may be sent ahead of the budget */

typedef struct timer timer;

/* An open REQ context with its aio. Owned by the request using it (an
 * attempt or a cancel), else on its worker's idle list (under lock). */
struct gw_lane {
	nng_ctx ctx;
	nng_aio *aio;
	gw_worker *w;
	int sock_id;            /* discovery may close and reopen w->sock */
	void (*done)(gw_lane *); /* the aio's callback: its request's */
	void *arg;              /* the attempt, or NULL for a cancel */
	bool sent;              /* the request is out: waiting for the reply */
	gw_lane *next;
};

typedef struct attempt {
	gw_invocation *inv;
	gw_worker *w;
	gw_lane *lane; /* while live */
	char id[CR_ID_MAX + 1];
	bool live;
	bool cancel_sent;
	int64_t t0, t1;
	const char *outcome; /* won, lost, busy, error, bad_request, timeout... */
	bool gone;           /* failed because its worker went away */
	char detail[160];
	char wname[96];
} attempt;

struct gw_invocation {
	int refs;
	gw_runtime *rt;
	cr_request *req;
	gw_done_fn done;
	void *arg;
	const char *mode;
	int width;    /* 1 or 2 */
	int hedge_ms; /* -1 none */
	int64_t t0, deadline;
	attempt att[MAX_ATTEMPTS];
	int natt, active, retries, gone_retries;
	bool hedged;
	bool last_busy; /* the last attempt to end was refused `busy` */
	/* queue */
	bool queued;
	int64_t qstart, queued_ms;
	unsigned qgen, hgen;
	timer *htimer, *qtimer; /* armed hedge / queue-wait timers */
	gw_invocation *qnext;
	/* outcome */
	bool finished, delivered;
	gw_result res;
	nng_msg *win_msg;
	msgpack_unpacked win;
	attempt *winner;
	gw_invocation *pnext; /* pending delivery */
	gw_invocation **handle; /* the caller's, cleared before done is called */
	char base_id[32];
	/* all live invocations, for gw_invoke_worker_lost */
	gw_invocation *lprev, *lnext;
};

static gw_invocation *pending;
static gw_invocation *live;
static unsigned long long seq;

static void advance(gw_invocation *inv);
static void fail_all(gw_invocation *inv);

/* ---- lifetime ---------------------------------------------------------- */

static void unref(gw_invocation *inv)
{
	if (--inv->refs > 0)
		return;
	if (inv->lprev)
		inv->lprev->lnext = inv->lnext;
	else
		live = inv->lnext;
	if (inv->lnext)
		inv->lnext->lprev = inv->lprev;
	if (inv->win_msg) {
		msgpack_unpacked_destroy(&inv->win);
		nng_msg_free(inv->win_msg);
	}
	free(inv);
}

static void summarize(gw_invocation *inv)
{
	gw_result *r = &inv->res;
	json_t *atts = json_array();
	size_t off = 0;
	off += (size_t)snprintf(r->summary + off, sizeof(r->summary) - off,
	                        "mode=%s width=%d attempts=%d retries=%d hedged=%d queued_ms=%lld",
	                        inv->mode, inv->width, inv->natt, inv->retries, inv->hedged,
	                        (long long)inv->queued_ms);
	for (int i = 0; i < inv->natt; i++) {
		attempt *a = &inv->att[i];
		int64_t end = a->t1 ? a->t1 : gw_now_ms();
		const char *outcome = a->outcome ? a->outcome : (a->cancel_sent ? "lost" : "abandoned");
		json_array_append_new(atts, json_pack("{s:s, s:s, s:s, s:I, s:s?}", "worker", a->w->url,
		                                      "name", a->wname[0] ? a->wname : a->w->name,
		                                      "outcome", outcome, "ms", (json_int_t)(end - a->t0),
		                                      "detail", a->detail[0] ? a->detail : NULL));
		if (off < sizeof(r->summary))
			off += (size_t)snprintf(r->summary + off, sizeof(r->summary) - off,
			                        " a%d=%s:%s:%lldms", i, a->w->url, outcome,
			                        (long long)(end - a->t0));
	}
	r->race = json_pack("{s:s, s:i, s:o, s:i, s:b, s:I}", "mode", inv->mode, "width", inv->width,
	                    "attempts", atts, "retries", inv->retries, "hedged", inv->hedged,
	                    "queued_ms", (json_int_t)inv->queued_ms);
	if (inv->winner)
		json_object_set_new(r->race, "winner", json_string(inv->winner->w->url));
}

/* Ends the invocation with r's status (reply set when 200). */
static void finish(gw_invocation *inv, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void send_cancel(attempt *a);
static void disarm(gw_invocation *inv, bool hedge, bool queue);


/* Takes a queued invocation out of its runtime's wait queue. */
static void queue_unlink(gw_invocation *inv)
{
	gw_runtime *rt = inv->rt;
	gw_invocation **pp = &rt->qhead, *prev = NULL;
	while (*pp && *pp != inv) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (*pp) {
		*pp = inv->qnext;
		if (rt->qtail == inv)
			rt->qtail = prev;
		rt->nqueued--;
	}
	inv->queued = false;
}
static void finish(gw_invocation *inv, int status, const char *code, const char *fmt, ...)
{
	if (inv->finished)
		return;
	inv->finished = true;
	inv->res.status = status;
	inv->res.code = code;
	inv->res.rt = inv->rt;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(inv->res.message, sizeof(inv->res.message), fmt, ap);
		va_end(ap);
	}
	if (inv->queued) /* cannot be: callers unlink first; be safe */
		queue_unlink(inv);
	for (int i = 0; i < inv->natt; i++)
		if (inv->att[i].live && &inv->att[i] != inv->winner)
			send_cancel(&inv->att[i]);
	disarm(inv, true, true);
	summarize(inv);
	inv->pnext = pending;
	pending = inv;
}

void gw_invoke_flush(void)
{
	for (;;) {
		gw_lock();
		gw_invocation *inv = pending;
		if (inv) {
			pending = inv->pnext;
			if (inv->handle)
				*inv->handle = NULL;
		}
		gw_unlock();
		if (!inv)
			return;
		inv->done(inv->arg, &inv->res); /* the lock is not held here */
		json_decref(inv->res.race);
		inv->res.race = NULL;
		gw_lock();
		inv->delivered = true;
		unref(inv);
		gw_unlock();
	}
}

/* ---- lanes ------------------------------------------------------------- */

static void lane_cb(void *arg)
{
	gw_lane *l = arg;
	l->done(l);
}

/* Under lock: an idle lane of w, or a new one. */
static gw_lane *lane_take(gw_worker *w, void (*done)(gw_lane *), void *arg)
{
	int sock_id = nng_socket_id(w->sock);
	gw_lane *l;
	while ((l = w->lanes) != NULL) {
		w->lanes = l->next;
		if (l->sock_id == sock_id)
			break;
		nng_aio_reap(l->aio); /* its socket, and so its context, was closed */
		free(l);
	}
	if (!l) {
		if (!(l = calloc(1, sizeof(*l))))
			return NULL;
		if (nng_aio_alloc(&l->aio, lane_cb, l) != 0 || nng_ctx_open(&l->ctx, w->sock) != 0) {
			if (l->aio)
				nng_aio_free(l->aio);
			free(l);
			return NULL;
		}
		l->w = w;
		l->sock_id = sock_id;
	}
	l->done = done;
	l->arg = arg;
	l->sent = false;
	l->next = NULL;
	return l;
}

/* Under lock: l's request was answered, its context is idle. */
static void lane_put(gw_lane *l)
{
	nng_aio_set_msg(l->aio, NULL);
	l->next = l->w->lanes;
	l->w->lanes = l;
}

/* Without lock: l's request failed; its context may be in any state. */
static void lane_drop(gw_lane *l)
{
	nng_ctx_close(l->ctx);
	nng_aio_reap(l->aio);
	free(l);
}

/* ms as an nng timeout: at least 1 (0 would mean "none"), at most
 * INT32_MAX (nng_duration is 32 bits; negatives are special values). */
static nng_duration duration(int64_t ms)
{
	return ms < 1 ? 1 : ms > INT32_MAX ? INT32_MAX : (nng_duration)ms;
}

/* Sends msg (taken) on l: the request's first step. */
static void lane_send(gw_lane *l, nng_msg *msg, int64_t timeout_ms)
{
	nng_aio_set_msg(l->aio, msg);
	nng_aio_set_timeout(l->aio, duration(timeout_ms));
	nng_ctx_send(l->ctx, l->aio);
}

/* In l's callback, once the request is out: wait for the reply. No lock:
 * only this callback touches l->sent. The send completes while the
 * sender may still hold gw_lock; taking it here would put this thread
 * to sleep and wake it again, on the path of every reply. */
static void lane_recv(gw_lane *l, int64_t timeout_ms)
{
	l->sent = true;
	nng_aio_set_msg(l->aio, NULL);
	nng_aio_set_timeout(l->aio, duration(timeout_ms));
	nng_ctx_recv(l->ctx, l->aio);
}

/* ---- cancel ------------------------------------------------------------ */

static void cancel_cb(gw_lane *l)
{
	int rv = nng_aio_result(l->aio);
	nng_msg *msg = NULL;
	if (!l->sent && rv == 0) {
		lane_recv(l, 2000);
		return;
	}
	if (!l->sent || rv == 0)
		msg = nng_aio_get_msg(l->aio);
	if (rv == 0 && msg) {
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		size_t off = 0;
		if (msgpack_unpack_next(&u, nng_msg_body(msg), nng_msg_len(msg), &off) ==
		        MSGPACK_UNPACK_SUCCESS &&
		    u.data.type == MSGPACK_OBJECT_MAP) {
			const msgpack_object *cd = cr_obj_get(&u.data, "cancelled");
			if (cd && cd->type == MSGPACK_OBJECT_BOOLEAN && cd->via.boolean)
				gw_metric_inc(GW_M_CANCELS_OK);
		}
		msgpack_unpacked_destroy(&u);
	}
	if (msg)
		nng_msg_free(msg);
	if (rv == 0) {
		gw_lock();
		lane_put(l);
		gw_unlock();
	} else {
		lane_drop(l);
	}
}

static nng_msg *encode(const cr_request *r)
{
	msgpack_sbuffer sb;
	nng_msg *msg = NULL;
	msgpack_sbuffer_init(&sb);
	if (gw_request_encode(r, &sb) != 0 || nng_msg_alloc(&msg, 0) != 0 ||
	    nng_msg_append(msg, sb.data, sb.size) != 0) {
		if (msg)
			nng_msg_free(msg);
		msg = NULL;
	}
	msgpack_sbuffer_destroy(&sb);
	return msg;
}

/* Under lock. Tells a losing attempt's worker to stop it; fire and
 * forget (the attempt itself ends when the worker answers it
 * "cancelled"). */
static void send_cancel(attempt *a)
{
	if (a->cancel_sent)
		return;
	a->cancel_sent = true;
	cr_request r = { .op = CR_OP_CANCEL };
	snprintf(r.id, sizeof(r.id), "%s", a->id);
	nng_msg *msg = encode(&r);
	gw_lane *l = msg ? lane_take(a->w, cancel_cb, NULL) : NULL;
	if (!l) {
		if (msg)
			nng_msg_free(msg);
		cr_log("error", "cancel_failed", "worker=%s id=%s error=\"out of resources\"",
		       a->w->url, a->id);
		return;
	}
	gw_metric_inc(GW_M_CANCELS_SENT);
	lane_send(l, msg, 2000);
}

/* ---- attempts ---------------------------------------------------------- */

static bool reply_ok(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

static void set_detail(attempt *a, const char *outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_detail(attempt *a, const char *outcome, const char *fmt, ...)
{
	a->outcome = outcome;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->detail, sizeof(a->detail), fmt, ap);
	va_end(ap);
}

static void attempt_failed(gw_invocation *inv, attempt *a)
{
	a->w->failures++;
	gw_metric_inc(GW_M_ATTEMPT_FAIL);
	if (!inv->finished && gw_now_ms() >= inv->deadline)
		finish(inv, 504, "deadline",
		       "no reply before the deadline (%lld ms): last attempt on %s: %s",
		       (long long)(inv->deadline - inv->t0), a->w->url, a->detail);
	advance(inv);
}

/* A decoded reply of attempt a: decide. Takes msg. */
static void attempt_reply(gw_invocation *inv, attempt *a, nng_msg *msg)
{
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	if (msgpack_unpack_next(&u, nng_msg_body(msg), nng_msg_len(msg), &off) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    u.data.type != MSGPACK_OBJECT_MAP) {
		set_detail(a, "error", "unreadable reply (%zu bytes)", nng_msg_len(msg));
		goto failed;
	}
	const char *p;
	size_t n;
	if (cr_obj_bytes(cr_obj_get(&u.data, "worker"), &p, &n))
		snprintf(a->wname, sizeof(a->wname), "%.*s", (int)n, p);
	if (reply_ok(cr_obj_get(&u.data, "ok"))) {
		if (inv->finished) { /* a loser that finished before its cancel landed */
			set_detail(a, "lost", "finished before the cancel landed");
			goto done;
		}
		a->outcome = "won";
		inv->winner = a;
		a->w->served++;
		if (inv->active > 0)
			gw_metric_inc(GW_M_RACES_WON);
		for (int i = 0; i < inv->natt; i++)
			if (inv->att[i].live)
				gw_metric_inc(GW_M_RACES_LOST);
		inv->win_msg = msg;
		inv->win = u;
		inv->res.reply = &inv->win.data;
		inv->res.worker_url = a->w->url;
		inv->res.worker_name = a->wname;
		gw_pool_record_latency(inv->rt, gw_now_ms() - inv->t0);
		finish(inv, 200, NULL, NULL);
		return;
	}
	const msgpack_object *err = cr_obj_get(&u.data, "error");
	const msgpack_object *code = err ? cr_obj_get(err, "code") : NULL;
	const char *mp = "";
	size_t mn = 0;
	if (err)
		cr_obj_bytes(cr_obj_get(err, "message"), &mp, &mn);
	if (cr_obj_eq(code, CR_E_BAD_REQUEST)) {
		set_detail(a, "bad_request", "%.*s", (int)mn, mp);
		finish(inv, 400, "bad_request", "%.*s", (int)mn, mp);
		goto done;
	}
	if (cr_obj_eq(code, CR_E_UNSUPPORTED)) {
		set_detail(a, "unsupported", "%.*s", (int)mn, mp);
		finish(inv, 502, "unsupported", "worker %s does not support this request: %.*s",
		       a->w->url, (int)mn, mp);
		goto done;
	}
	{
		const char *cp = "?";
		size_t cn = 1;
		if (code)
			cr_obj_bytes(code, &cp, &cn);
		set_detail(a, cr_obj_eq(code, CR_E_BUSY) ? "busy" : a->cancel_sent ? "lost" : "error",
		           "%.*s: %.*s", (int)cn, cp, (int)mn, mp);
	}
	if (cr_obj_eq(code, CR_E_BUSY)) {
		/* its slots are taken by others: none of it until the next ping */
		a->w->reported_busy = a->w->slots;
		inv->last_busy = true;
	}
	if (a->cancel_sent)
		goto done; /* our own cancel answered: the expected end of a loser */
failed:
	msgpack_unpacked_destroy(&u);
	nng_msg_free(msg);
	attempt_failed(inv, a);
	return;
done:
	msgpack_unpacked_destroy(&u);
	nng_msg_free(msg);
	advance(inv);
}

static void attempt_cb(gw_lane *l)
{
	attempt *a = l->arg;
	gw_invocation *inv = a->inv;
	int rv = nng_aio_result(l->aio);
	bool sent = l->sent;
	nng_msg *msg = NULL;
	if (!sent && rv == 0) {
		lane_recv(l, inv->deadline - gw_now_ms()); /* the deadline is fixed */
		return;
	}
	if (!sent || rv == 0)
		msg = nng_aio_get_msg(l->aio);
	gw_lock();
	a->t1 = gw_now_ms();
	a->live = false;
	a->lane = NULL;
	if (rv == 0)
		lane_put(l); /* free for the next request, maybe in gw_invoke_pump below */
	inv->active--;
	a->w->inflight--;
	if (a->w->reported_busy > 0)
		a->w->reported_busy--; /* that run was part of the worker's count too */
	inv->last_busy = false;
	if (rv == 0) {
		attempt_reply(inv, a, msg);
	} else {
		if (!sent && msg)
			nng_msg_free(msg);
		if (a->outcome == NULL)
			set_detail(a, a->cancel_sent ? "lost" : rv == NNG_ETIMEDOUT ? "timeout" : "error",
			           "%s: %s", sent ? "reply" : "send", nng_strerror(rv));
		a->gone |= rv == NNG_ECONNRESET || rv == NNG_ECLOSED || rv == NNG_ECONNSHUT ||
		           rv == NNG_ECONNREFUSED;
		if (a->gone) /* before the pipe event says so: not picked again meanwhile */
			gw_worker_eject(a->w, "connection lost during a run");
		if (rv == NNG_ETIMEDOUT && sent)
			send_cancel(a); /* the worker would run it on, holding a slot */
		if (a->cancel_sent && a->outcome && !strcmp(a->outcome, "lost"))
			advance(inv);
		else
			attempt_failed(inv, a);
	}
	gw_invoke_pump(); /* a slot freed: queued invocations may go */
	unref(inv);
	gw_unlock();
	if (rv != 0)
		lane_drop(l);
	gw_invoke_flush();
}

/* Under lock. Starts one attempt on w. */
static bool attempt_start(gw_invocation *inv, gw_worker *w)
{
	if (inv->natt >= MAX_ATTEMPTS)
		return false;
	attempt *a = &inv->att[inv->natt];
	memset(a, 0, sizeof(*a));
	a->inv = inv;
	a->w = w;
	snprintf(a->id, sizeof(a->id), "%s-%d", inv->base_id, inv->natt);
	snprintf(inv->req->id, sizeof(inv->req->id), "%s", a->id);
	nng_msg *msg = encode(inv->req);
	if (!msg || !(a->lane = lane_take(w, attempt_cb, a))) {
		if (msg)
			nng_msg_free(msg);
		cr_log("error", "attempt_failed", "worker=%s error=\"out of resources\"", w->url);
		return false;
	}
	inv->natt++;
	inv->active++;
	inv->refs++;
	w->inflight++;
	a->live = true;
	a->t0 = gw_now_ms();
	int64_t left = inv->deadline - a->t0;
	/* a send waits only for a connection; do not let it eat the deadline */
	lane_send(a->lane, msg, left < 2000 ? left : 2000);
	return true;
}

/* Under lock: abort attempts on an ejected worker (they would wait for
 * their deadline otherwise). */
void gw_invoke_worker_lost(gw_worker *w)
{
	for (gw_invocation *inv = live; inv; inv = inv->lnext)
		for (int i = 0; i < inv->natt; i++)
			if (inv->att[i].live && inv->att[i].w == w) {
				if (!inv->att[i].outcome)
					set_detail(&inv->att[i], "error", "worker ejected: stopped answering");
				inv->att[i].gone = true;
				nng_aio_cancel(inv->att[i].lane->aio);
			}
}

/* ---- the hedge budget -------------------------------------------------- */

/* Under lock: a hedged-mode invocation started; it earns its share. */
static void hedge_earn(gw_runtime *rt)
{
	rt->hedge_debt -= gw_cfg.hedge_budget / 100.0;
	if (rt->hedge_debt < 0)
		rt->hedge_debt = 0;
}

/* Under lock: may one more hedge go? Takes it from the budget if so. */
static bool hedge_take(gw_runtime *rt)
{
	if (rt->hedge_debt + 1 > HEDGE_BURST) {
		gw_metric_inc(GW_M_HEDGES_SKIPPED);
		return false;
	}
	rt->hedge_debt += 1;
	return true;
}

/* ---- timers ------------------------------------------------------------ */

struct timer {
	gw_invocation *inv;
	nng_aio *aio;
	bool hedge;
	unsigned gen;
};

static void timer_cb(void *arg)
{
	timer *t = arg;
	gw_invocation *inv = t->inv;
	int rv = nng_aio_result(t->aio);
	gw_lock();
	if (inv->htimer == t)
		inv->htimer = NULL;
	if (inv->qtimer == t)
		inv->qtimer = NULL;
	if (rv == 0 && !inv->finished) {
		if (t->hedge && t->gen == inv->hgen && inv->active == 1 && !inv->hedged) {
			gw_worker *w[1], *tried[MAX_ATTEMPTS];
			for (int i = 0; i < inv->natt; i++)
				tried[i] = inv->att[i].w;
			if (gw_pool_pick(inv->rt, w, 1, tried, (size_t)inv->natt) == 1 &&
			    hedge_take(inv->rt)) {
				inv->hedged = true;
				gw_metric_inc(GW_M_HEDGES);
				attempt_start(inv, w[0]);
			}
		} else if (!t->hedge && t->gen == inv->qgen && inv->queued) {
			queue_unlink(inv);
			inv->queued_ms += gw_now_ms() - inv->qstart;
			gw_metric_inc(GW_M_REJECTED);
			inv->res.retry_after = 1;
			if (gw_now_ms() >= inv->deadline)
				finish(inv, 504, "deadline", "waited %lld ms for a free slot until the deadline",
				       (long long)inv->queued_ms);
			else if (inv->natt > 0 && !inv->last_busy)
				fail_all(inv); /* waited for a worker to come back: none did */
			else
				finish(inv, 503, "overloaded",
				       "every %s worker stayed busy for %lld ms; retry later", inv->rt->name,
				       (long long)inv->queued_ms);
		}
	}
	unref(inv);
	gw_unlock();
	nng_aio_reap(t->aio);
	free(t);
	gw_invoke_flush();
}

static void arm(gw_invocation *inv, bool hedge, int64_t ms)
{
	timer *t = calloc(1, sizeof(*t));
	if (!t || nng_aio_alloc(&t->aio, timer_cb, t) != 0) {
		free(t);
		return;
	}
	t->inv = inv;
	t->hedge = hedge;
	t->gen = hedge ? ++inv->hgen : ++inv->qgen;
	timer **cur = hedge ? &inv->htimer : &inv->qtimer;
	if (*cur)
		nng_aio_cancel((*cur)->aio);
	*cur = t;
	inv->refs++;
	nng_sleep_aio(duration(ms), t->aio);
}

/* Under lock: stop waiting timers, so that a finished invocation is not
 * kept alive (up to hedge_ms) by them. */
static void disarm(gw_invocation *inv, bool hedge, bool queue)
{
	if (hedge && inv->htimer)
		nng_aio_cancel(inv->htimer->aio);
	if (queue && inv->qtimer)
		nng_aio_cancel(inv->qtimer->aio);
}

/* ---- the decision loop ------------------------------------------------- */

static void enqueue(gw_invocation *inv)
{
	gw_runtime *rt = inv->rt;
	if (rt->nqueued >= gw_cfg.queue) {
		gw_metric_inc(GW_M_REJECTED);
		inv->res.retry_after = 1;
		finish(inv, 429, "queue_full",
		       "every %s worker is busy and %d requests already wait; retry later", rt->name,
		       rt->nqueued);
		return;
	}
	if (inv->natt == 0)
		gw_metric_inc(GW_M_QUEUED);
	inv->queued = true;
	inv->qstart = gw_now_ms();
	inv->qnext = NULL;
	if (rt->qtail)
		rt->qtail->qnext = inv;
	else
		rt->qhead = inv;
	rt->qtail = inv;
	rt->nqueued++;
	int64_t wait = gw_cfg.queue_ms, left = inv->deadline - gw_now_ms();
	arm(inv, false, wait < left ? wait : left);
}

static void fail_all(gw_invocation *inv)
{
	char buf[400];
	size_t off = 0;
	buf[0] = 0;
	for (int i = 0; i < inv->natt && off < sizeof(buf); i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s: %s", i ? "; " : "",
		                        inv->att[i].w->url, inv->att[i].detail);
	inv->res.retry_after = 1;
	finish(inv, 502, "upstream_failed", "no worker could run it after %d attempt%s: %s",
	       inv->natt, inv->natt == 1 ? "" : "s", buf);
}

/* Under lock: start what should run now, or finish. */
static void advance(gw_invocation *inv)
{
	if (inv->finished || inv->queued || inv->active > 0)
		return;
	if (gw_now_ms() >= inv->deadline) {
		finish(inv, 504, "deadline", "deadline of %lld ms passed",
		       (long long)(inv->deadline - inv->t0));
		return;
	}
	bool first = inv->natt == 0;
	/* a `busy` is no failure of the request: it waits for a slot instead */
	bool retry = !first && !inv->last_busy;
	bool gone = retry && inv->att[inv->natt - 1].gone &&
	            inv->gone_retries < gw_runtime_workers(inv->rt);
	if (retry && !gone && inv->retries >= gw_cfg.retries) {
		fail_all(inv);
		return;
	}
	if (gw_runtime_healthy(inv->rt) == 0) {
		inv->res.retry_after = 1;
		if (first)
			finish(inv, 502, "no_worker", "no healthy %s %s worker is reachable right now",
			       inv->rt->name, inv->rt->version);
		else if (gone)
			enqueue(inv); /* until one is back */
		else
			fail_all(inv);
		return;
	}
	gw_worker *w[2], *tried[MAX_ATTEMPTS] = { 0 };
	for (int i = 0; i < inv->natt; i++)
		tried[i] = inv->att[i].w;
	int want = first && inv->hedge_ms < 0 ? inv->width : 1;
	size_t got = gw_pool_pick(inv->rt, w, (size_t)want, tried, (size_t)inv->natt);
	if (got == 0) {
		enqueue(inv);
		return;
	}
	if (retry) {
		if (gone)
			inv->gone_retries++;
		else
			inv->retries++;
		gw_metric_inc(GW_M_RETRIES);
	}
	for (size_t i = 0; i < got; i++)
		attempt_start(inv, w[i]);
	if (inv->active == 0) {
		fail_all(inv);
		return;
	}
	if (first && inv->hedge_ms >= 0 && inv->width > 1)
		arm(inv, true, inv->hedge_ms);
}

void gw_invoke_pump(void)
{
	for (gw_runtime *rt = gw_pool_runtimes(); rt; rt = rt->next) {
		/* at most once round: one waiting for a worker to come back goes
		 * back to the tail */
		for (int n = rt->nqueued; n > 0 && rt->qhead; n--) {
			gw_worker *w;
			bool none = gw_runtime_healthy(rt) == 0;
			if (!none && gw_pool_pick(rt, &w, 1, NULL, 0) == 0)
				break;
			gw_invocation *inv = rt->qhead;
			rt->qhead = inv->qnext;
			if (!rt->qhead)
				rt->qtail = NULL;
			rt->nqueued--;
			inv->queued = false;
			inv->queued_ms += gw_now_ms() - inv->qstart;
			inv->qgen++;
			disarm(inv, false, true);
			advance(inv);
		}
	}
}

static int64_t stage_wall(const cr_limits *asked, const cr_limits *def)
{
	if (asked->wall_ms >= 0)
		return asked->wall_ms;
	if (def->wall_ms >= 0)
		return def->wall_ms;
	return 10000;
}

/* a + b for a, b >= 0, INT64_MAX when that overflows. */
static int64_t sat_add(int64_t a, int64_t b)
{
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* Under lock: the client went away; finish now (its attempts are
 * cancelled on their workers by finish). */
void gw_invoke_abort(gw_invocation *inv, const char *why)
{
	if (inv->finished)
		return;
	if (inv->queued) {
		queue_unlink(inv);
		inv->queued_ms += gw_now_ms() - inv->qstart;
	}
	finish(inv, 499, "client_closed", "%s", why);
}

void gw_invoke(gw_runtime *rt, cr_request *req, const gw_invoke_opts *o, gw_done_fn done,
               void *arg, gw_invocation **handle)
{
	gw_invocation *inv = calloc(1, sizeof(*inv));
	if (!inv) {
		gw_result r = { .status = 503, .code = "out_of_memory", .retry_after = 1 };
		snprintf(r.message, sizeof(r.message), "the gateway is out of memory");
		done(arg, &r);
		return;
	}
	gw_lock();
	inv->refs = 1;
	inv->rt = rt;
	inv->req = req;
	inv->done = done;
	inv->arg = arg;
	inv->handle = handle;
	if (handle)
		*handle = inv;
	inv->t0 = gw_now_ms();
	snprintf(inv->base_id, sizeof(inv->base_id), "gw%llx-%x", ++seq, (unsigned)rand());
	inv->width = o->race ? o->race : gw_cfg.race;
	inv->hedge_ms = o->hedge_ms == -2 ? gw_cfg.hedge_ms : o->hedge_ms;
	if (inv->width < 2)
		inv->hedge_ms = -1;
	if (inv->hedge_ms == 0) {
		int64_t p95 = gw_runtime_p95(rt);
		inv->hedge_ms = p95 > 0 ? (int)p95 : 1000;
	}
	inv->mode = inv->width < 2 ? "single" : inv->hedge_ms >= 0 ? "hedge" : "race";
	if (inv->hedge_ms >= 0)
		hedge_earn(rt);
	int64_t wall = stage_wall(&req->limits, &rt->def_limits);
	if (rt->compiled)
		wall = sat_add(wall, stage_wall(&req->compile_limits, &rt->def_compile));
	inv->deadline = sat_add(inv->t0, sat_add(wall, gw_cfg.slack_ms));
	inv->lnext = live;
	if (live)
		live->lprev = inv;
	live = inv;
	advance(inv);
	gw_unlock();
	gw_invoke_flush();
}
