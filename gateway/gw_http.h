/*
 * gw_http.h — private to the gateway's HTTP side: the small interface
 * between the transport (gw_http.c: libmicrohttpd, connections, bodies,
 * deadlines, writing replies) and the routes (gw_routes.c: the route
 * table, CORS, API keys, the JSON handlers). Nothing else includes it.
 *
 * One gw_call per request. The transport fills its request half, calls
 * gw_route_head once the head is in (the route answers there, or lets
 * the body be read), then gw_route_body once the body is in. A route
 * answers with gw_http_reply / gw_http_json / gw_http_error exactly once,
 * from any thread, at once or later (the transport suspends the
 * connection meanwhile). gw_route_client_gone is called (from the
 * transport's sweeper) when the client closed its connection while the
 * reply was awaited; gw_route_end when the call is freed.
 */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdatomic.h>

#include "gw.h"

#define GW_CALL_HDRS 8      /* extra reply headers a call may carry */
#define GW_CALL_HDR_MAX 384 /* bytes of one such value */

struct MHD_Connection;
struct MHD_Response;
struct gw_conn;
typedef struct gw_route gw_route;

typedef struct gw_call {
	/* the transport's */
	struct MHD_Connection *conn;
	struct gw_conn *gc;
	int64_t t0;
	char path[128];  /* without query; trailing slashes dropped */
	char method[40];
	char *body;
	size_t body_len, body_cap;
	size_t reserved; /* bytes of the bodies-in-flight budget held */
	bool has_body;   /* Content-Length > 0 or Transfer-Encoding */
	bool close;      /* answer with Connection: close */
	bool too_large, overloaded; /* found while a chunked body came in */
	bool logged, gone;
	atomic_int refs;
	atomic_int body_state; /* gw_http.c's BODY_* */
	atomic_int astate;     /* gw_http.c's A_*: the reply handshake */
	struct MHD_Response *resp;
	int status;
	size_t nhdrs;
	struct {
		const char *name;
		char value[GW_CALL_HDR_MAX];
	} hdrs[GW_CALL_HDRS];
	/* the routes' */
	const gw_route *route;
	const char *metric; /* metrics label: the route's path, or "other" */
	const char *allow;  /* for a 405's Allow */
	bool piston, counted;
	gw_run run;
	const char *runtime;
	gw_invocation *inv; /* while the invocation runs (under gw_lock) */
} gw_call;

/* ---- the transport, for the routes (gw_http.c) ------------------------ */

/* A request header, or NULL. Only before the reply. */
const char *gw_call_header(gw_call *c, const char *name);
/* Adds a header to every reply of c (value copied, cut at GW_CALL_HDR_MAX). */
void gw_call_add_header(gw_call *c, const char *name, const char *value);
/* Answers c: status, body (taken, may be NULL) of type ctype, Retry-After
 * when > 0, extra_log appended to the request's log line. Any thread. */
void gw_http_reply(gw_call *c, int status, char *body, size_t len, const char *ctype,
                   int retry_after, const char *extra_log);
void gw_http_json(gw_call *c, int status, json_t *j, int retry_after, const char *extra_log);
/* {error:{code,message}} (and a top-level message for Piston clients). */
void gw_http_error(gw_call *c, int status, const char *code, const char *msg, int retry_after);
char *gw_http_error_text(gw_call *c, const char *code, const char *msg);

/* ---- the routes, for the transport (gw_routes.c) ---------------------- */

/* The head is in: route, CORS, method, API key. False when answered. */
bool gw_route_head(gw_call *c);
/* The body (c->body, c->body_len) is in. */
void gw_route_body(gw_call *c);
/* The client closed its connection while c's reply was awaited. */
void gw_route_client_gone(gw_call *c);
/* c is being freed. */
void gw_route_end(gw_call *c);

#endif
