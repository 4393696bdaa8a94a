/*
 * gw_metrics.c — the gateway's numbers, rendered in Prometheus text format.
 *
 * Counters are C11 atomics bumped from any thread. HTTP requests are
 * counted in a small fixed table of (route, status) pairs; per-runtime
 * latency histograms and per-worker health live with the pool (under
 * gw_lock) and are read from there when /metrics is scraped.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static atomic_ullong counters[GW_M_NCOUNTERS];
static atomic_int inflight_now;

static const struct { const char *name, *help; } counter_info[GW_M_NCOUNTERS] = {
	[GW_M_RACES_WON] = { "corral_gateway_races_won_total", "Invocations won by one of two racing workers." },
	[GW_M_RACES_LOST] = { "corral_gateway_races_lost_total", "Racing attempts that lost and were cancelled." },
	[GW_M_HEDGES] = { "corral_gateway_hedges_total", "Second attempts started by the hedge timer." },
	[GW_M_HEDGES_SKIPPED] = { "corral_gateway_hedges_skipped_total", "Hedges not sent because the hedge budget was spent." },
	[GW_M_RETRIES] = { "corral_gateway_retries_total", "Attempts started after earlier attempts failed." },
	[GW_M_CANCELS_SENT] = { "corral_gateway_cancels_total", "Cancel operations sent to workers." },
	[GW_M_CANCELS_OK] = { "corral_gateway_cancels_confirmed_total", "Cancels that found and stopped a run." },
	[GW_M_EJECTIONS] = { "corral_gateway_worker_ejections_total", "Workers marked unhealthy." },
	[GW_M_RECOVERIES] = { "corral_gateway_worker_recoveries_total", "Workers healthy again after an ejection." },
	[GW_M_ATTEMPT_FAIL] = { "corral_gateway_attempt_failures_total", "Attempts that ended without a usable reply." },
	[GW_M_QUEUED] = { "corral_gateway_queued_total", "Invocations that waited for a free slot." },
	[GW_M_REJECTED] = { "corral_gateway_overload_rejections_total", "Requests refused with 429/503 for overload." },
};

/* (route, status) request counts: routes are a fixed set of names. */
#define MAX_ROUTE_ROWS 128
static struct {
	const char *route;
	int status;
	atomic_ullong n;
} rows[MAX_ROUTE_ROWS];
static atomic_int nrows;
static pthread_mutex_t rows_mtx = PTHREAD_MUTEX_INITIALIZER;

void gw_metric_inc(enum gw_counter c) { atomic_fetch_add(&counters[c], 1); }
void gw_metric_inflight(int delta) { atomic_fetch_add(&inflight_now, delta); }
int gw_metric_inflight_get(void) { return atomic_load(&inflight_now); }

void gw_metric_http(const char *route, int status)
{
	int n = atomic_load(&nrows);
	for (int i = 0; i < n; i++) {
		if (rows[i].status == status && rows[i].route == route) {
			atomic_fetch_add(&rows[i].n, 1);
			return;
		}
	}
	pthread_mutex_lock(&rows_mtx);
	n = atomic_load(&nrows);
	int i;
	for (i = 0; i < n; i++)
		if (rows[i].status == status && rows[i].route == route)
			break;
	if (i == n && n < MAX_ROUTE_ROWS) {
		rows[i].route = route;
		rows[i].status = status;
		atomic_store(&nrows, n + 1);
	}
	if (i < MAX_ROUTE_ROWS)
		atomic_fetch_add(&rows[i].n, 1);
	pthread_mutex_unlock(&rows_mtx);
}

/* A growable string for the scrape. */
typedef struct textbuf {
	char *p;
	size_t len, cap;
	bool oom;
} textbuf;

static void bprintf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(textbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0 || b->oom)
			return;
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void render_counters(textbuf *b)
{
	for (int i = 0; i < GW_M_NCOUNTERS; i++) {
		bprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_info[i].name,
		        counter_info[i].help, counter_info[i].name, counter_info[i].name,
		        (unsigned long long)atomic_load(&counters[i]));
	}
	bprintf(b, "# HELP corral_gateway_in_flight Invocations in progress.\n"
	           "# TYPE corral_gateway_in_flight gauge\ncorral_gateway_in_flight %d\n",
	        atomic_load(&inflight_now));
	bprintf(b, "# HELP corral_gateway_http_requests_total HTTP requests by route and status.\n"
	           "# TYPE corral_gateway_http_requests_total counter\n");
	int n = atomic_load(&nrows);
	for (int i = 0; i < n; i++)
		bprintf(b, "corral_gateway_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
		        rows[i].route, rows[i].status, (unsigned long long)atomic_load(&rows[i].n));
}

static void render_histograms(textbuf *b)
{
	bprintf(b, "# HELP corral_gateway_invocation_seconds Latency of successful invocations.\n"
	           "# TYPE corral_gateway_invocation_seconds histogram\n");
	for (gw_runtime *rt = gw_pool_runtimes(); rt; rt = rt->next) {
		uint64_t cum = 0;
		for (int i = 0; i < GW_HIST_N; i++) {
			cum += rt->hist[i];
			bprintf(b, "corral_gateway_invocation_seconds_bucket{runtime=\"%s\",version=\"%s\",le=\"%g\"} %llu\n",
			        rt->name, rt->version, gw_hist_bounds[i], (unsigned long long)cum);
		}
		cum += rt->hist[GW_HIST_N];
		bprintf(b, "corral_gateway_invocation_seconds_bucket{runtime=\"%s\",version=\"%s\",le=\"+Inf\"} %llu\n",
		        rt->name, rt->version, (unsigned long long)cum);
		bprintf(b, "corral_gateway_invocation_seconds_sum{runtime=\"%s\",version=\"%s\"} %.6f\n",
		        rt->name, rt->version, rt->hist_sum);
		bprintf(b, "corral_gateway_invocation_seconds_count{runtime=\"%s\",version=\"%s\"} %llu\n",
		        rt->name, rt->version, (unsigned long long)rt->hist_count);
	}
	bprintf(b, "# HELP corral_gateway_queue_length Invocations waiting for a slot.\n"
	           "# TYPE corral_gateway_queue_length gauge\n");
	for (gw_runtime *rt = gw_pool_runtimes(); rt; rt = rt->next)
		bprintf(b, "corral_gateway_queue_length{runtime=\"%s\",version=\"%s\"} %d\n",
		        rt->name, rt->version, rt->nqueued);
}

static void render_workers(textbuf *b)
{
	bprintf(b, "# HELP corral_gateway_worker_healthy 1 when the worker answers pings.\n"
	           "# TYPE corral_gateway_worker_healthy gauge\n");
	for (gw_worker *w = gw_pool_workers(); w; w = w->next) {
		if (w->removed)
			continue;
		bprintf(b, "corral_gateway_worker_healthy{worker=\"%s\",runtime=\"%s\"} %d\n", w->url,
		        w->rt ? w->rt->name : w->label, w->healthy);
	}
	bprintf(b, "# HELP corral_gateway_worker_in_flight Invocations this gateway has on the worker.\n"
	           "# TYPE corral_gateway_worker_in_flight gauge\n");
	for (gw_worker *w = gw_pool_workers(); w; w = w->next)
		if (!w->removed)
			bprintf(b, "corral_gateway_worker_in_flight{worker=\"%s\"} %d\n", w->url, w->inflight);
	bprintf(b, "# HELP corral_gateway_worker_slots Slots the worker announced.\n"
	           "# TYPE corral_gateway_worker_slots gauge\n");
	for (gw_worker *w = gw_pool_workers(); w; w = w->next)
		if (!w->removed)
			bprintf(b, "corral_gateway_worker_slots{worker=\"%s\"} %d\n", w->url, w->slots);
	bprintf(b, "# HELP corral_gateway_worker_slots_out_of_service Slots the worker said are "
	           "out of service (their cleanup failed; it retries).\n"
	           "# TYPE corral_gateway_worker_slots_out_of_service gauge\n");
	for (gw_worker *w = gw_pool_workers(); w; w = w->next)
		if (!w->removed)
			bprintf(b, "corral_gateway_worker_slots_out_of_service{worker=\"%s\"} %d\n",
			        w->url, w->out_of_service);
}

char *gw_metrics_render(size_t *len)
{
	textbuf b = { 0 };
	render_counters(&b);
	gw_lock();
	render_histograms(&b);
	render_workers(&b);
	gw_unlock();
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
