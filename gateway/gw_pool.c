/*
 * gw_pool.c — the workers the gateway can reach and the runtimes they serve.
 *
 * Each worker is one nng REQ socket dialled (in the background, with
 * reconnects) to its URL; every request to it is one nng context on that
 * socket, so many can be in flight. Resends are off: a resend would run
 * the user's code twice.
 *
 * Health: a ticker thread probes every worker each --ping-ms: `info`
 * while the worker is new or ejected (so a restarted worker is learnt
 * afresh: runtime, version, aliases, slots, default limits), `ping`
 * while it is healthy. A probe unanswered within --ping-timeout-ms, or
 * the connection dropping (nng pipe event), ejects the worker at once;
 * the next answered `info` brings it back. With the defaults a dead
 * worker is ejected within 1.5 s.
 *
 * Discovery: a resolver thread re-resolves each dns://NAME:PORT every
 * --discover-ms and keeps one worker per address (a Kubernetes headless
 * service gives one per pod). Addresses that disappear are marked
 * removed (never freed: in-flight aios may still point at them; a
 * returning address reuses its entry).
 *
 * Runtimes are keyed by (name, version) as the workers' `info` says.
 */
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "gw.h"
#include "log.h"

#include <nng/protocol/reqrep0/req.h>

const double gw_hist_bounds[GW_HIST_N] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                           1, 2.5, 5, 10, 30, 60, 300 };

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static bool stopping;
static gw_worker *workers;
static gw_runtime *runtimes;
static pthread_t ticker, resolver;
static bool have_resolver;
static uint64_t pick_seq; /* orders picks, for round robin among ties */

void gw_lock(void) { pthread_mutex_lock(&mtx); }
void gw_unlock(void) { pthread_mutex_unlock(&mtx); }
gw_worker *gw_pool_workers(void) { return workers; }
gw_runtime *gw_pool_runtimes(void) { return runtimes; }

/* ---- runtimes ---------------------------------------------------------- */

static const struct { const char *name, *entry; } entries[] = {
	{ "python", "main.py" }, { "python3", "main.py" }, { "node", "main.js" },
	{ "javascript", "main.js" }, { "typescript", "main.ts" }, { "ruby", "main.rb" },
	{ "bash", "main.sh" }, { "sh", "main.sh" }, { "c", "main.c" }, { "cpp", "main.cpp" },
	{ "c++", "main.cpp" }, { "go", "main.go" }, { "rust", "main.rs" },
	{ "java", "Main.java" }, { "php", "main.php" }, { "perl", "main.pl" },
	{ "lua", "main.lua" },
};

static char *default_entry(const char *name)
{
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++)
		if (!strcasecmp(entries[i].name, name))
			return strdup(entries[i].entry);
	return strdup("main");
}

static char *obj_strdup(const msgpack_object *o)
{
	const char *p;
	size_t n;
	if (!o || !cr_obj_bytes(o, &p, &n))
		return NULL;
	return strndup(p, n);
}

static void info_limits(const msgpack_object *m, cr_limits *l)
{
	*l = CR_LIMITS_UNSET;
	if (!m || m->type != MSGPACK_OBJECT_MAP)
		return;
	for (int i = 0; i < CR_NLIMITS; i++) {
		int64_t v;
		if (cr_obj_int(cr_obj_get(m, cr_limit_name(i)), &v))
			*cr_limit_ref(l, i) = v;
	}
}

static gw_runtime *runtime_get(const char *name, const char *version)
{
	for (gw_runtime *rt = runtimes; rt; rt = rt->next)
		if (!strcmp(rt->name, name) && !strcmp(rt->version, version))
			return rt;
	gw_runtime *rt = calloc(1, sizeof(*rt));
	if (!rt || !(rt->name = strdup(name)) || !(rt->version = strdup(version))) {
		free(rt);
		return NULL;
	}
	rt->entry = default_entry(name);
	rt->def_limits = rt->def_compile = CR_LIMITS_UNSET;
	rt->next = runtimes;
	runtimes = rt;
	return rt;
}

static void runtime_update(gw_runtime *rt, const msgpack_object *info)
{
	const msgpack_object *r = cr_obj_get(info, "runtime");
	const msgpack_object *al = r ? cr_obj_get(r, "aliases") : NULL;
	if (al && al->type == MSGPACK_OBJECT_ARRAY) {
		for (size_t i = 0; i < rt->naliases; i++)
			free(rt->aliases[i]);
		free(rt->aliases);
		rt->aliases = calloc(al->via.array.size + 1, sizeof(char *));
		rt->naliases = 0;
		for (uint32_t i = 0; rt->aliases && i < al->via.array.size; i++) {
			char *a = obj_strdup(&al->via.array.ptr[i]);
			if (a)
				rt->aliases[rt->naliases++] = a;
		}
	}
	const msgpack_object *c = r ? cr_obj_get(r, "compiled") : NULL;
	rt->compiled = c && c->type == MSGPACK_OBJECT_BOOLEAN && c->via.boolean;
	char *entry = r ? obj_strdup(cr_obj_get(r, "entry")) : NULL;
	if (entry && cr_valid_path(entry, strlen(entry), 255)) {
		free(rt->entry);
		rt->entry = entry;
	} else {
		free(entry);
	}
	const msgpack_object *l = cr_obj_get(info, "limits");
	info_limits(l ? cr_obj_get(l, "default") : NULL, &rt->def_limits);
	l = cr_obj_get(info, "compile_limits");
	info_limits(l ? cr_obj_get(l, "default") : NULL, &rt->def_compile);
}

int gw_runtime_healthy(const gw_runtime *rt)
{
	int n = 0;
	for (gw_worker *w = workers; w; w = w->next)
		n += w->rt == rt && w->healthy && !w->removed;
	return n;
}

int gw_runtime_workers(const gw_runtime *rt)
{
	int n = 0;
	for (gw_worker *w = workers; w; w = w->next)
		n += w->rt == rt && !w->removed;
	return n;
}

int gw_pool_healthy_total(void)
{
	int n = 0;
	for (gw_worker *w = workers; w; w = w->next)
		n += w->rt && w->healthy && !w->removed;
	return n;
}

static bool runtime_has_workers(const gw_runtime *rt)
{
	for (gw_worker *w = workers; w; w = w->next)
		if (w->rt == rt && !w->removed)
			return true;
	return false;
}

static bool name_matches(const gw_runtime *rt, const char *name)
{
	if (!strcasecmp(rt->name, name))
		return true;
	for (size_t i = 0; i < rt->naliases; i++)
		if (!strcasecmp(rt->aliases[i], name))
			return true;
	return false;
}

/* "3.11" matches "3.11" and "3.11.2" but not "3.110". */
static bool version_matches(const char *have, const char *want)
{
	if (!want || !*want || !strcmp(want, "*") || !strcmp(want, "latest"))
		return true;
	size_t n = strlen(want);
	return !strncmp(have, want, n) && (have[n] == 0 || have[n] == '.' || want[n - 1] == '.');
}

gw_runtime *gw_pool_find(const char *name, const char *version)
{
	gw_runtime *best = NULL;
	int best_healthy = 0;
	for (gw_runtime *rt = runtimes; rt; rt = rt->next) {
		if (!runtime_has_workers(rt) || !name_matches(rt, name) ||
		    !version_matches(rt->version, version))
			continue;
		int h = gw_runtime_healthy(rt) > 0;
		if (!best || h > best_healthy ||
		    (h == best_healthy && strverscmp(rt->version, best->version) > 0)) {
			best = rt;
			best_healthy = h;
		}
	}
	return best;
}

void gw_pool_record_latency(gw_runtime *rt, int64_t ms)
{
	double s = (double)ms / 1000.0;
	int i = 0;
	while (i < GW_HIST_N && s > gw_hist_bounds[i])
		i++;
	rt->hist[i]++;
	rt->hist_sum += s;
	rt->hist_count++;
	rt->recent[rt->recent_pos] = (int32_t)(ms > INT32_MAX ? INT32_MAX : ms);
	rt->recent_pos = (rt->recent_pos + 1) % 128;
	if (rt->nrecent < 128)
		rt->nrecent++;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* -1 until there are enough samples to mean anything. */
int64_t gw_runtime_p95(const gw_runtime *rt)
{
	if (rt->nrecent < 20)
		return -1;
	int32_t v[128];
	memcpy(v, rt->recent, rt->nrecent * sizeof(v[0]));
	qsort(v, rt->nrecent, sizeof(v[0]), cmp_i32);
	return v[(rt->nrecent * 95) / 100];
}

/* ---- selection --------------------------------------------------------- */

static bool in_list(gw_worker *w, gw_worker *const *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (l[i] == w)
			return true;
	return false;
}

/* Slots taken: ours, or what the worker itself last said when more
 * (other clients, runs it still finishes after we gave up on them), and
 * those it said are out of service (their cleanup failed). */
static int taken(const gw_worker *w)
{
	return (w->reported_busy > w->inflight ? w->reported_busy : w->inflight) +
	       w->out_of_service;
}

/* The count of out-of-service slots of a ping reply (an array of them in
 * info's); 0 from a worker that does not say. */
static int out_of_service(const msgpack_object *m)
{
	const msgpack_object *o = cr_obj_get(m, "out_of_service");
	int64_t n;
	if (o && o->type == MSGPACK_OBJECT_ARRAY)
		return (int)o->via.array.size;
	return o && cr_obj_int(o, &n) && n >= 0 ? (int)n : 0;
}

/* Busy-ness as a fraction of slots, scaled to compare in integers. */
static long load_of(const gw_worker *w)
{
	return (long)taken(w) * 1000 / (w->slots > 0 ? w->slots : 1);
}

static bool usable(const gw_worker *w, const gw_runtime *rt)
{
	return w->rt == rt && w->healthy && !w->removed && taken(w) < w->slots;
}

/* Least busy first; among equally busy ones, the least recently picked,
 * so that ties take turns whatever else picks in between. */
size_t gw_pool_pick(gw_runtime *rt, gw_worker **out, size_t n, gw_worker *const *avoid,
                    size_t navoid)
{
	size_t got = 0;
	for (int pass = 0; pass < 2 && got < n; pass++) {
		while (got < n) {
			gw_worker *best = NULL;
			for (gw_worker *w = workers; w; w = w->next) {
				if (!usable(w, rt) || in_list(w, out, got) ||
				    (pass == 0 && in_list(w, avoid, navoid)))
					continue;
				if (!best || load_of(w) < load_of(best) ||
				    (load_of(w) == load_of(best) && w->last_pick < best->last_pick))
					best = w;
			}
			if (!best)
				break;
			best->last_pick = ++pick_seq;
			out[got++] = best;
		}
	}
	return got;
}

void gw_worker_eject(gw_worker *w, const char *why)
{
	if (!w->healthy)
		return;
	w->healthy = false;
	gw_metric_inc(GW_M_EJECTIONS);
	gw_invoke_worker_lost(w);
	cr_log("warn", "eject", "worker=%s runtime=%s reason=\"%s\"", w->url,
	       w->rt ? w->rt->name : w->label, why);
}

static void worker_healthy(gw_worker *w)
{
	w->last_ok_ms = gw_now_ms();
	if (w->healthy)
		return;
	w->healthy = true;
	gw_metric_inc(GW_M_RECOVERIES);
	cr_log("info", "healthy", "worker=%s runtime=%s version=%s slots=%d", w->url,
	       w->rt ? w->rt->name : "?", w->rt ? w->rt->version : "?", w->slots);
}

/* ---- probes (info / ping) ---------------------------------------------- */

typedef struct probe {
	gw_worker *w;
	nng_ctx ctx;
	nng_aio *aio;
	bool info;
	bool sent;
	int64_t deadline;
} probe;

static void probe_apply_info(gw_worker *w, const msgpack_object *m)
{
	const msgpack_object *r = cr_obj_get(m, "runtime");
	char *name = r ? obj_strdup(cr_obj_get(r, "name")) : NULL;
	char *version = r ? obj_strdup(cr_obj_get(r, "version")) : NULL;
	int64_t slots;
	if (!name || !version || !cr_obj_int(cr_obj_get(m, "slots"), &slots) || slots < 1) {
		gw_worker_eject(w, "info reply lacks runtime name/version or slots");
	} else {
		gw_runtime *rt = runtime_get(name, version);
		if (rt) {
			runtime_update(rt, m);
			if (w->rt && w->rt != rt)
				cr_log("info", "runtime_changed", "worker=%s runtime=%s version=%s",
				       w->url, name, version);
			w->rt = rt;
			w->slots = (int)slots;
			int64_t busy;
			w->reported_busy = cr_obj_int(cr_obj_get(m, "busy"), &busy) ? (int)busy : 0;
			w->out_of_service = out_of_service(m);
			char *wn = obj_strdup(cr_obj_get(m, "worker"));
			if (wn) {
				char *slash = strrchr(wn, '/');
				if (slash)
					*slash = 0;
				free(w->name);
				w->name = wn;
			}
			worker_healthy(w);
		}
	}
	free(name);
	free(version);
}

static bool probe_ok(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

/* Under lock. A worker that wants another secret (or none given) is
 * said once: it stays out of rotation until the secrets match. */
static void probe_refused(gw_worker *w, const msgpack_object *m)
{
	const msgpack_object *e = cr_obj_get(m, "error");
	if (e && e->type == MSGPACK_OBJECT_MAP &&
	    cr_obj_eq(cr_obj_get(e, "code"), CR_E_UNAUTHORIZED) && !w->unauthorized_logged) {
		w->unauthorized_logged = true;
		cr_log("error", "worker refuses our requests: unauthorized (give the gateway the "
		                "workers' --secret-file)", "worker=%s", w->url);
	}
	gw_worker_eject(w, "probe answered ok=false");
}

static void probe_apply(probe *p, nng_msg *msg)
{
	gw_worker *w = p->w;
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	if (msgpack_unpack_next(&u, nng_msg_body(msg), nng_msg_len(msg), &off) !=
	        MSGPACK_UNPACK_SUCCESS ||
	    u.data.type != MSGPACK_OBJECT_MAP) {
		gw_worker_eject(w, "unreadable probe reply");
	} else if (!probe_ok(cr_obj_get(&u.data, "ok"))) {
		probe_refused(w, &u.data);
	} else if (p->info) {
		probe_apply_info(w, &u.data);
	} else {
		int64_t slots, busy;
		if (cr_obj_int(cr_obj_get(&u.data, "slots"), &slots) && slots > 0)
			w->slots = (int)slots;
		if (cr_obj_int(cr_obj_get(&u.data, "busy"), &busy) && busy >= 0)
			w->reported_busy = (int)busy;
		w->out_of_service = out_of_service(&u.data);
		worker_healthy(w);
	}
	msgpack_unpacked_destroy(&u);
}

static void probe_cb(void *arg)
{
	probe *p = arg;
	int rv = nng_aio_result(p->aio);
	nng_msg *msg = NULL;
	if (!p->sent && rv == 0) {
		p->sent = true;
		nng_aio_set_msg(p->aio, NULL); /* sent: no longer ours */
		int64_t left = p->deadline - gw_now_ms();
		nng_aio_set_timeout(p->aio, (nng_duration)(left > 1 ? left : 1));
		nng_ctx_recv(p->ctx, p->aio);
		return;
	}
	if (!p->sent || rv == 0)
		msg = nng_aio_get_msg(p->aio); /* unsent request, or the reply */
	gw_lock();
	p->w->probing = false;
	if (rv == 0) {
		probe_apply(p, msg);
	} else if (!stopping) {
		char why[96];
		snprintf(why, sizeof(why), "%s %s: %s", p->info ? "info" : "ping",
		         p->sent ? "reply" : "send", nng_strerror(rv));
		gw_worker_eject(p->w, why);
	}
	gw_unlock();
	if (msg)
		nng_msg_free(msg);
	nng_ctx_close(p->ctx);
	nng_aio_reap(p->aio);
	free(p);
}

/* Under lock. */
static void probe_start(gw_worker *w)
{
	probe *p = calloc(1, sizeof(*p));
	nng_msg *msg = NULL;
	if (!p)
		return;
	p->w = w;
	p->info = !w->healthy || !w->rt;
	p->deadline = gw_now_ms() + gw_cfg.ping_timeout_ms;
	cr_request r = { .op = p->info ? CR_OP_INFO : CR_OP_PING };
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (gw_request_encode(&r, &sb) != 0 || nng_aio_alloc(&p->aio, probe_cb, p) != 0 ||
	    nng_ctx_open(&p->ctx, w->sock) != 0 ||
	    nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, sb.data, sb.size) != 0) {
		msgpack_sbuffer_destroy(&sb);
		if (msg)
			nng_msg_free(msg);
		if (p->aio)
			nng_aio_free(p->aio);
		free(p);
		return;
	}
	msgpack_sbuffer_destroy(&sb);
	w->probing = true;
	nng_aio_set_msg(p->aio, msg);
	nng_aio_set_timeout(p->aio, gw_cfg.ping_timeout_ms);
	nng_ctx_send(p->ctx, p->aio);
}

/* ---- workers ----------------------------------------------------------- */

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	gw_worker *w = arg;
	gw_lock();
	if (nng_socket_id(nng_pipe_socket(pipe)) != nng_socket_id(w->sock)) {
		gw_unlock(); /* a socket discovery closed before reconnecting */
		return;
	}
	if (ev == NNG_PIPE_EV_ADD_POST) {
		w->connected = true;
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		w->connected = false;
		if (!stopping)
			gw_worker_eject(w, "connection closed");
	}
	gw_unlock();
}

/* Under lock: the worker's REQ socket, dialling in the background. */
static int worker_connect(gw_worker *w)
{
	int rv;
	if ((rv = nng_req0_open(&w->sock)) != 0 ||
	    (rv = nng_socket_set_ms(w->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(w->sock, NNG_OPT_RECVMAXSZ, gw_cfg.max_reply)) != 0 ||
	    (rv = nng_socket_set_ms(w->sock, NNG_OPT_RECONNMINT, 50)) != 0 ||
	    (rv = nng_socket_set_ms(w->sock, NNG_OPT_RECONNMAXT, 1000)) != 0 ||
	    (rv = nng_pipe_notify(w->sock, NNG_PIPE_EV_ADD_POST, pipe_event, w)) != 0 ||
	    (rv = nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, pipe_event, w)) != 0 ||
	    (rv = nng_dial(w->sock, w->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		cr_log("error", "worker_add", "worker=%s error=\"%s\"", w->url, nng_strerror(rv));
		nng_close(w->sock);
		return -1;
	}
	w->closed = false;
	return 0;
}

/* Under lock. A known URL is reused (workers are never freed: aios may
 * still point at them), reconnected when discovery had dropped it. */
static gw_worker *worker_add(const char *url, const char *label)
{
	for (gw_worker *w = workers; w; w = w->next) {
		if (strcmp(w->url, url))
			continue;
		if (w->removed) {
			cr_log("info", "worker_back", "worker=%s", url);
			if (w->closed && worker_connect(w) < 0)
				return NULL;
			w->removed = false;
		}
		return w;
	}
	gw_worker *w = calloc(1, sizeof(*w));
	if (!w || !(w->url = strdup(url)) || !(w->label = strdup(label)) || !(w->name = strdup(""))) {
		cr_log("error", "worker_add", "worker=%s error=\"out of memory\"", url);
		return NULL;
	}
	if (worker_connect(w) < 0) {
		free(w->url);
		free(w->label);
		free(w->name);
		free(w);
		return NULL;
	}
	w->next = workers;
	workers = w;
	cr_log("info", "worker_add", "worker=%s label=%s", url, label);
	return w;
}

static void *ticker_main(void *arg)
{
	gw_lock();
	while (!stopping) {
		for (gw_worker *w = workers; w; w = w->next)
			if (!w->removed && !w->probing)
				probe_start(w);
		/* a worker that came back, or none left: queued work may move */
		gw_invoke_pump();
		gw_unlock();
		gw_invoke_flush();
		gw_lock();
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)gw_cfg.ping_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&stop_cv, &mtx, &ts);
	}
	gw_unlock();
	return NULL;
}

/* ---- DNS discovery ----------------------------------------------------- */

static void resolve_one(const char *spec)
{
	char host[256], port[16], label[300];
	const char *hp = spec + 6, *colon = strrchr(hp, ':');
	size_t hl = (size_t)(colon - hp);
	if (hl == 0 || hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port))
		return;
	memcpy(host, hp, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	snprintf(label, sizeof(label), "dns:%s", spec + 6);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res); /* blocks: not under lock */
	if (rc != 0) {
		cr_log("warn", "discover", "name=%s error=\"%s\"", spec, gai_strerror(rc));
		return; /* keep what we had: a DNS hiccup is no reason to drop workers */
	}
	char urls[64][80];
	int n = 0;
	for (struct addrinfo *a = res; a && n < 64; a = a->ai_next) {
		char ip[INET6_ADDRSTRLEN];
		if (a->ai_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)a->ai_addr)->sin_addr, ip, sizeof(ip));
			snprintf(urls[n], sizeof(urls[n]), "tcp://%s:%s", ip, port);
		} else if (a->ai_family == AF_INET6) {
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr, ip, sizeof(ip));
			snprintf(urls[n], sizeof(urls[n]), "tcp://[%s]:%s", ip, port);
		} else {
			continue;
		}
		n++;
	}
	freeaddrinfo(res);
	nng_socket dropped[64];
	int ndropped = 0;
	gw_lock();
	for (gw_worker *w = workers; w; w = w->next) {
		if (strcmp(w->label, label) || w->removed)
			continue;
		bool still = false;
		for (int i = 0; i < n && !still; i++)
			still = !strcmp(urls[i], w->url);
		if (!still && ndropped < 64) {
			/* a pod that went away: stop dialling it */
			w->removed = true;
			w->closed = true;
			dropped[ndropped++] = w->sock;
			gw_worker_eject(w, "no longer in DNS");
			cr_log("info", "worker_removed", "worker=%s source=%s", w->url, spec);
		}
	}
	for (int i = 0; i < n; i++)
		worker_add(urls[i], label);
	gw_unlock();
	/* not under the lock: closing runs pipe callbacks that take it */
	for (int i = 0; i < ndropped; i++)
		nng_close(dropped[i]);
}

static void *resolver_main(void *arg)
{
	gw_lock();
	while (!stopping) {
		gw_unlock();
		for (size_t i = 0; i < gw_cfg.ndiscover; i++)
			resolve_one(gw_cfg.discover[i]);
		gw_lock();
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += gw_cfg.discover_ms / 1000;
		ts.tv_nsec += (long)(gw_cfg.discover_ms % 1000) * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (!stopping)
			pthread_cond_timedwait(&stop_cv, &mtx, &ts);
	}
	gw_unlock();
	return NULL;
}

int gw_pool_init(void)
{
	gw_lock();
	for (size_t i = 0; i < gw_cfg.nworkers; i++) {
		if (!worker_add(gw_cfg.workers[i].url, gw_cfg.workers[i].runtime)) {
			gw_unlock();
			return -1;
		}
	}
	gw_unlock();
	if (pthread_create(&ticker, NULL, ticker_main, NULL) != 0)
		return -1;
	if (gw_cfg.ndiscover) {
		if (pthread_create(&resolver, NULL, resolver_main, NULL) != 0)
			return -1;
		have_resolver = true;
	}
	return 0;
}

void gw_pool_shutdown(void)
{
	gw_lock();
	stopping = true;
	pthread_cond_broadcast(&stop_cv);
	gw_unlock();
	pthread_join(ticker, NULL);
	if (have_resolver)
		pthread_join(resolver, NULL);
	for (gw_worker *w = workers; w; w = w->next)
		if (!w->closed)
			nng_close(w->sock);
}
