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
 */
#include "log.h"
#include "clock.h"
#include "processor.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static void *slot_main(void *arg)
{
	slot *s = arg;
	for (;;) {
		px_tidy(s->px);    /* what the last run left, now that its reply is out */
		px_prepare(s->px); /* prewarm: the next sandbox, while idle (no-op if off) */
		pthread_mutex_lock(&mu);
		while (!s->job && !stopping)
			pthread_cond_wait(&s->wake, &mu);
		if (!s->job) {
			pthread_mutex_unlock(&mu);
			return NULL;
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
		pthread_cond_init(&slots[i].wake, NULL);
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
		if (!slots[i].job && px_slot_warm_ready(slots[i].px))
			free_slot = &slots[i];
	for (int i = 0; i < nslots && !free_slot && !draining; i++)
		if (!slots[i].job)
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
