/*
 * slots.c — N slots, one thread each, one invocation at a time each.
 *
 * A run is handed to a free slot or refused at once (`busy`): the worker
 * never queues work it cannot start, so a client (the gateway) can try
 * another worker instead of waiting behind a long run. The slot thread
 * resolves the limits, runs the invocation through the proxy, writes the
 * whole reply and calls the job's done() with it, then logs one line.
 *
 * All slot state is guarded by one mutex (`mu`); runs themselves happen
 * outside it. Cancel looks a run up by id under the mutex and asks the
 * proxy to stop it, so it can never hit the slot's next job.
 *
 * Out of service: after each reply the slot thread cleans up (px_tidy:
 * keeper reaped, cgroup reset, work dirs removed). When that fails —
 * dirs the cleanup cannot remove would keep the slot's tmpfs and memory
 * cgroup full and fail every later run there — the slot is taken out of
 * service: it is handed no run, it says so in `info` (slot and error) and
 * `ping` (a count, and health "degraded", or "unhealthy" when no slot is
 * left), a warn line is logged, and its thread tries the cleanup again
 * after RETRY_MIN_MS, then twice as long each time up to RETRY_MAX_MS,
 * until it succeeds (an info line: back in service). A run handed to the
 * slot just before its cleanup failed is answered `busy`.
 */
#include "log.h"
#include "clock.h"
#include "processor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 60000

struct pr_job {
	cr_request req;
	pr_done_fn done;
	void *arg;
};

typedef struct slot {
	int index;
	pthread_t thread;
	pthread_cond_t wake;
	px_slot *px;
	pr_job *job; /* non-NULL while busy */
	bool cancel;
	bool out;          /* out of service: its cleanup failed */
	char why[512];     /* that failure */
	int64_t retry_at;  /* next try (cr_now_ms) */
	int64_t retry_ms;  /* the wait before it */
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot *slots;
static int nslots;
static bool draining, stopping;
static const pr_config *cfg;
static const pr_runtime *rt;

static void pack_ok(msgpack_packer *pk, const char *id, const char *worker,
                    const px_result *res)
{
	cr_reply_begin(pk, id, true, worker, 1 + res->has_compile + res->has_run);
	cr_pack_key(pk, "runtime");
	msgpack_pack_map(pk, 2);
	cr_pack_kstr(pk, "name", rt->name);
	cr_pack_kstr(pk, "version", rt->version);
	if (res->has_compile) {
		cr_pack_key(pk, "compile");
		cr_pack_stage(pk, &res->compile);
	}
	if (res->has_run) {
		cr_pack_key(pk, "run");
		cr_pack_stage(pk, &res->run);
	}
}

static void log_run(const char *id, const char *outcome, const px_result *res, int64_t ms)
{
	const cr_stage *st = res && res->has_run ? &res->run
	                     : res && res->has_compile ? &res->compile : NULL;
	cr_log("info", "invocation",
	       "id=%s runtime=%s status=%s stage=%s exit_code=%d cpu_ms=%lld "
	       "memory_bytes=%lld wall_ms=%lld",
	       id, rt->name, outcome,
	       !st ? "-" : (res->has_run ? "run" : "compile"), st ? st->exit_code : -1,
	       (long long)(st ? st->cpu_ms : 0), (long long)(st ? st->memory_bytes : 0),
	       (long long)ms);
}

/* Runs one job on slot s and writes its reply into sb. */
static void run_job(slot *s, pr_job *job, bool cancelled_early, msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	char worker[160], err[512] = "";
	pr_worker_name(worker, sizeof worker, s->index);
	const char *id = job->req.id;
	int64_t t0 = cr_now_ms();
	px_job pj = { .req = &job->req };
	px_result res;
	memset(&res, 0, sizeof res);

	if (cancelled_early) {
		cr_reply_error(&pk, id, worker, CR_E_CANCELLED, "cancelled before it started");
		log_run(id, "cancelled", NULL, 0);
		return;
	}
	if (pr_limits_resolve(&job->req.limits, &cfg->run_default, &cfg->run_max, "limits",
	                      &pj.run_limits, err, sizeof err) ||
	    pr_limits_resolve(&job->req.compile_limits, &cfg->compile_default,
	                      &cfg->compile_max, "compile_limits", &pj.compile_limits, err,
	                      sizeof err)) {
		cr_reply_error(&pk, id, worker, CR_E_BAD_REQUEST, err);
		log_run(id, CR_E_BAD_REQUEST, NULL, 0);
		return;
	}
	if (px_limits_check(&pj.run_limits, "limits", err, sizeof err) ||
	    (rt->compiled && px_limits_check(&pj.compile_limits, "compile_limits", err,
	                                          sizeof err))) {
		cr_reply_error(&pk, id, worker, CR_E_BAD_REQUEST, err); /* 400: no worker would run it */
		log_run(id, CR_E_BAD_REQUEST, NULL, 0);
		return;
	}
	pthread_mutex_lock(&mu);
	bool out = s->out;
	pthread_mutex_unlock(&mu);
	if (out) {
		cr_reply_error(&pk, id, worker, CR_E_BUSY,
		               "this slot is out of service (its cleanup failed); try again or "
		               "another worker");
		log_run(id, CR_E_BUSY, NULL, 0);
		return;
	}
	int rc = px_execute(s->px, &pj, &res, err, sizeof err);
	pthread_mutex_lock(&mu);
	bool cancelled = s->cancel || res.cancelled;
	pthread_mutex_unlock(&mu);
	if (rc != 0) {
		cr_reply_error(&pk, id, worker, CR_E_INTERNAL, err[0] ? err : "proxy failed");
		cr_log("error", "invocation failed", "id=%s error=%s", id,
		       cr_log_quote((char[600]){ 0 }, 600, err));
		log_run(id, CR_E_INTERNAL, NULL, cr_now_ms() - t0);
	} else if (cancelled) {
		cr_reply_error(&pk, id, worker, CR_E_CANCELLED, "cancelled by request");
		log_run(id, "cancelled", &res, cr_now_ms() - t0);
	} else {
		pack_ok(&pk, id, worker, &res);
		const cr_stage *st = res.has_run ? &res.run : &res.compile;
		log_run(id, cr_status_name(st->status), &res, cr_now_ms() - t0);
	}
	px_result_free(&res);
}

/* What the last run left goes (px_tidy); a slot it fails on leaves
 * service until a later try succeeds (the top comment). */
static void tidy(slot *s)
{
	char err[600] = "", q[700];
	int rc = px_tidy(s->px, err, sizeof err);
	pthread_mutex_lock(&mu);
	bool was = s->out;
	s->out = rc < 0;
	if (rc < 0) {
		snprintf(s->why, sizeof s->why, "%s", err);
		s->retry_ms = !was ? RETRY_MIN_MS
		              : s->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : s->retry_ms * 2;
		s->retry_at = cr_now_ms() + s->retry_ms;
	}
	pthread_mutex_unlock(&mu);
	if (rc < 0 && !was)
		cr_log("warn", "slot out of service", "slot=%d error=%s", s->index,
		       cr_log_quote(q, sizeof q, err));
	else if (rc == 0 && was)
		cr_log("info", "slot back in service", "slot=%d", s->index);
}

/* Waits (mu held) for a job, or the stop; an out-of-service slot only
 * until its next cleanup try. false: no job now. */
static bool wait_job(slot *s)
{
	while (!s->job && !stopping) {
		if (!s->out) {
			pthread_cond_wait(&s->wake, &mu);
			continue;
		}
		int64_t at = s->retry_at;
		struct timespec ts = { (time_t)(at / 1000), (long)(at % 1000) * 1000000 };
		if (pthread_cond_timedwait(&s->wake, &mu, &ts) != 0 && cr_now_ms() >= at)
			return false;
	}
	return s->job != NULL;
}

static void *slot_main(void *arg)
{
	slot *s = arg;
	for (;;) {
		tidy(s); /* what the last run left, now that its reply is out */
		if (!s->out) /* (written by this thread only) */
			px_prepare(s->px); /* prewarm: the next sandbox, while idle (no-op if off) */
		pthread_mutex_lock(&mu);
		if (!wait_job(s)) {
			bool stop = stopping;
			pthread_mutex_unlock(&mu);
			if (stop)
				return NULL;
			continue; /* out of service: clean again */
		}
		pr_job *job = s->job;
		bool early = s->cancel;
		pthread_mutex_unlock(&mu);

		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		run_job(s, job, early, &sb);

		pthread_mutex_lock(&mu);
		s->job = NULL;
		s->cancel = false;
		pthread_mutex_unlock(&mu);
		/* The slot is free before the reply leaves, so a client that
		 * sends its next run on receipt never meets a stale `busy`. */
		job->done(job->arg, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		cr_request_free(&job->req);
		free(job);
	}
}

int pr_slots_start(const pr_config *c, const pr_runtime *r)
{
	cfg = c;
	rt = r;
	nslots = c->slots;
	slots = calloc((size_t)nslots, sizeof *slots);
	if (!slots)
		return -1;
	for (int i = 0; i < nslots; i++) {
		slots[i].index = i;
		slots[i].px = px_slot_at(i);
		pthread_condattr_t ca; /* timed waits on cr_now_ms's clock */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&slots[i].wake, &ca);
		pthread_condattr_destroy(&ca);
		if (pthread_create(&slots[i].thread, NULL, slot_main, &slots[i]))
			return -1;
	}
	return 0;
}

int pr_slots_submit(cr_request *req, pr_done_fn done, void *arg)
{
	pr_job *job = malloc(sizeof *job);
	if (!job)
		return -1;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nslots; i++)
		if (slots[i].job && strcmp(slots[i].job->req.id, req->id) == 0) {
			pthread_mutex_unlock(&mu);
			free(job);
			return PR_SUBMIT_DUPLICATE;
		}
	slot *free_slot = NULL;
	/* prewarm: a free slot whose next sandbox is ready first */
	for (int i = 0; i < nslots && !free_slot && !draining; i++)
		if (!slots[i].job && !slots[i].out && px_slot_warm_ready(slots[i].px))
			free_slot = &slots[i];
	for (int i = 0; i < nslots && !free_slot && !draining; i++)
		if (!slots[i].job && !slots[i].out)
			free_slot = &slots[i];
	if (!free_slot) {
		pthread_mutex_unlock(&mu);
		free(job);
		return PR_SUBMIT_BUSY;
	}
	job->req = *req; /* the job owns the request's memory from here */
	job->done = done;
	job->arg = arg;
	free_slot->job = job;
	free_slot->cancel = false;
	pthread_cond_signal(&free_slot->wake);
	pthread_mutex_unlock(&mu);
	return 0;
}

bool pr_slots_cancel(const char *id)
{
	bool found = false;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nslots; i++)
		if (slots[i].job && strcmp(slots[i].job->req.id, id) == 0) {
			slots[i].cancel = true;
			px_cancel(slots[i].px);
			found = true;
		}
	pthread_mutex_unlock(&mu);
	return found;
}

void pr_slots_cancel_all(void)
{
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nslots; i++)
		if (slots[i].job) {
			slots[i].cancel = true;
			px_cancel(slots[i].px);
		}
	pthread_mutex_unlock(&mu);
}

int pr_slots_busy(void)
{
	int n = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nslots; i++)
		n += slots[i].job != NULL;
	pthread_mutex_unlock(&mu);
	return n;
}

int pr_slots_out(void)
{
	int n = 0;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nslots; i++)
		n += slots[i].out;
	pthread_mutex_unlock(&mu);
	return n;
}

void pr_slots_pack_out(msgpack_packer *pk)
{
	pthread_mutex_lock(&mu);
	int n = 0;
	for (int i = 0; i < nslots; i++)
		n += slots[i].out;
	msgpack_pack_array(pk, (size_t)n);
	for (int i = 0; i < nslots; i++)
		if (slots[i].out) {
			msgpack_pack_map(pk, 2);
			cr_pack_kint(pk, "slot", i);
			cr_pack_kstr(pk, "error", slots[i].why);
		}
	pthread_mutex_unlock(&mu);
}

void pr_slots_set_draining(bool on)
{
	pthread_mutex_lock(&mu);
	draining = on;
	pthread_mutex_unlock(&mu);
}

bool pr_slots_draining(void)
{
	pthread_mutex_lock(&mu);
	bool d = draining;
	pthread_mutex_unlock(&mu);
	return d;
}

void pr_slots_stop(void)
{
	pthread_mutex_lock(&mu);
	stopping = true;
	for (int i = 0; i < nslots; i++)
		pthread_cond_signal(&slots[i].wake);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < nslots; i++)
		pthread_join(slots[i].thread, NULL);
	free(slots);
	slots = NULL;
}
