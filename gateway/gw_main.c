/*
 * gw_main.c — corral-gateway's life: parse the configuration, start the
 * worker pool and the HTTP servers, tell s6 we are ready, and on SIGTERM
 * or SIGINT drain: /readyz turns 503 and new invocations are refused at
 * once, in-flight ones get up to --drain-ms to finish, then we exit.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"
#include "log.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static void notify_ready(void)
{
	if (gw_cfg.notify_fd < 0)
		return;
	if (write(gw_cfg.notify_fd, "\n", 1) != 1)
		cr_log("warn", "notify", "error=\"cannot write to --notify-fd %d\"", gw_cfg.notify_fd);
	close(gw_cfg.notify_fd);
}

static void drain(void)
{
	gw_http_set_draining();
	int64_t until = gw_now_ms() + gw_cfg.drain_ms;
	int n;
	while ((n = gw_metric_inflight_get()) > 0 && gw_now_ms() < until)
		usleep(20000);
	cr_log("info", "stop", "signal=%d in_flight_left=%d", (int)got_signal, n);
}

int main(int argc, char **argv)
{
	cr_log_init("corral-gateway");
	gw_mem_init();
	int rc = gw_config_parse(argc, argv);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	srand((unsigned)time(NULL) ^ (unsigned)getpid() << 16);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (gw_pool_init() < 0) {
		cr_log("error", "start", "error=\"cannot set up the worker pool\"");
		return 1;
	}
	if (gw_http_start() < 0)
		return 1;
	notify_ready();
	while (!got_signal)
		pause();
	drain();
	gw_http_stop();
	gw_pool_shutdown();
	return 0;
}
