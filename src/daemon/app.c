#include "daemon/app.h"

#include <lua.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/api_console.h"
#include "core/buf.h"
#include "core/log.h"
#include "codec/jsonw.h"
#include "model/message.h"
#include "core/metrics.h"
#include "http/http_client.h"
#include "rules/host.h"
#include "rules/rules_exec.h"
#include "delivery/reports.h"
#include "delivery/route_stats_rebuild.h"
#include "model/route_stats.h"
#include "delivery/scheduler.h"
#include "store/store.h"
#include "rules/bindings/bindings.h"

#define APP_MAX_PARAMS 4
#define APP_MAX_SEGMENT 256
/* Countries of each provider with series of their own in the smsrules_route_* gauges (the rest: "other"). */
#define APP_ROUTE_STATS_TOP 10
/* The most messages read to rebuild the route statistics at start (the newest of the last 24 h). */
#define APP_ROUTE_STATS_REBUILD_MAX 500000
/* Cluster mode: how often (sweeps of 1 s) a node looks for work left by nodes gone silent. */
#define APP_TAKE_OVER_S 5

typedef struct app_route {
    const char *pattern; /* segments; "*" matches one segment; also the metrics label */
    const char *label;
    const char *method;
    sr_api_handler handler;
} app_route;

/* The daemon's own routes get the API context that it embeds. */
#define APP_OF(api) ((sr_app *)((char *)(api)-offsetof(sr_app, api)))

/* Alive and answering: 200 either way. A full store is a state the daemon
 * serves through (reads, outcomes of messages already sent), so it shows in
 * the body, not as a failure that would get the daemon restarted. */
static void api_healthz(sr_api *api, sr_http_request *req, const char *const *params, int n) {
    sr_app *app = APP_OF(api);
    static const char ok[] = "{\"status\":\"ok\",\"storage\":\"ok\"}";
    static const char full[] = "{\"status\":\"degraded\",\"storage\":\"full\"}";
    if (app->store && sr_store_full(app->store))
        sr_http_respond(req, 200, "application/json", full, sizeof full - 1, NULL);
    else
        sr_http_respond(req, 200, "application/json", ok, sizeof ok - 1, NULL);
}

static void api_metrics(sr_api *api, sr_http_request *req, const char *const *params, int n) {
    sr_app *app = APP_OF(api);
    sr_buf out;
    sr_buf_init(&out);
    sr_metrics_write(&out);
    sr_route_stats_metrics(app->route_stats, sr_now_ms(), APP_ROUTE_STATS_TOP, &out);
    sr_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len, NULL);
    sr_buf_free(&out);
}

static void api_admin_reload(sr_api *api, sr_http_request *req, const char *const *params, int n);

static const app_route app_routes[] = {
    {"/healthz", "/healthz", "GET", api_healthz},
    {"/metrics", "/metrics", "GET", api_metrics},
    {"/v1/messages", "/v1/messages", "POST", sr_api_messages_post},
    {"/v1/messages", "/v1/messages", "GET", sr_api_messages_list},
    {"/v1/messages/*", "/v1/messages/{id}", "GET", sr_api_messages_get},
    {"/v1/messages/*/retry", "/v1/messages/{id}/retry", "POST", sr_api_messages_retry},
    {"/v1/events/*", "/v1/events/{name}", "POST", sr_api_events_post},
    {"/v1/admin/reload", "/v1/admin/reload", "POST", api_admin_reload},
    {"/v1/inbound/*", "/v1/inbound/{id}", "GET", sr_api_inbound_get},
    {"/v1/stats/routes", "/v1/stats/routes", "GET", sr_api_stats_routes},
    {"/console", "/console", "GET", sr_api_console_page},
    {"/console/*", "/console/{file}", "GET", sr_api_console_page},
    {"/v1/console/login", "/v1/console/login", "POST", sr_api_console_login},
    {"/v1/console/logout", "/v1/console/logout", "POST", sr_api_console_logout},
    {"/v1/console/session", "/v1/console/session", "GET", sr_api_console_session},
    {"/v1/search/messages", "/v1/search/messages", "GET", sr_api_search_messages},
    {"/v1/failed", "/v1/failed", "GET", sr_api_failed_groups},
    {"/v1/inbound", "/v1/inbound", "GET", sr_api_inbound_list},
    {"/v1/providers", "/v1/providers", "GET", sr_api_providers},
    {"/v1/rules", "/v1/rules", "GET", sr_api_rules_get},
    {"/v1/overview", "/v1/overview", "GET", sr_api_overview},
    {"/hooks/*/*", "/hooks/{provider}/{kind}", "POST", sr_api_hooks_post},
    {"/hooks/*/*/*", "/hooks/{provider}/{secret}/{kind}", "POST", sr_api_hooks_post},
};

/* Matches path against pattern, collecting "*" segments into params.
 * Returns 1 on a match. */
static int route_match(const char *pattern, const char *path, char params[][APP_MAX_SEGMENT], int *count) {
    *count = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        const char *se = strchr(s, '/');
        size_t slen = se ? (size_t)(se - s) : strlen(s);
        if (plen == 1 && *p == '*') {
            if (slen == 0 || slen >= APP_MAX_SEGMENT || *count == APP_MAX_PARAMS) return 0;
            memcpy(params[*count], s, slen);
            params[*count][slen] = '\0';
            (*count)++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
    }
    return *p == '\0' && *s == '\0';
}

static void app_handle(sr_http_request *req, void *ud) {
    sr_app *app = ud;
    char params[APP_MAX_PARAMS][APP_MAX_SEGMENT];
    const char *param_ptrs[APP_MAX_PARAMS];
    char allow[128] = "";
    const char *label = NULL;
    for (size_t i = 0; i < sizeof app_routes / sizeof app_routes[0]; i++) {
        const app_route *r = &app_routes[i];
        int count;
        if (!route_match(r->pattern, req->path, params, &count)) continue;
        label = r->label;
        if (strcmp(r->method, req->method_name) == 0) {
            req->route = r->label;
            for (int k = 0; k < count; k++) param_ptrs[k] = params[k];
            r->handler(&app->api, req, param_ptrs, count);
            return;
        }
        if (!strstr(allow, r->method)) {
            if (allow[0]) strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
            strncat(allow, r->method, sizeof allow - strlen(allow) - 1);
        }
    }
    if (label) {
        req->route = label;
        char extra[160];
        snprintf(extra, sizeof extra, "Allow: %s\r\n", allow);
        char msg[200];
        snprintf(msg, sizeof msg, "method %s is not allowed here; allowed: %s", req->method_name, allow);
        sr_http_respond_error(req, 405, "method_not_allowed", msg, extra);
        return;
    }
    req->route = "unmatched";
    sr_http_respond_error(req, 404, "not_found", "no such path", NULL);
}

static void app_observe(const sr_http_request *req, int status, void *ud) { sr_metrics_http(req->route, status); }

static double app_open_connections(void *ud) {
    sr_app *app = ud;
    return app->server ? sr_http_server_open_connections(app->server) : 0;
}

static double app_http_read_paused(void *ud) {
    sr_app *app = ud;
    return app->server ? (double)sr_http_server_stats(app->server)->read_paused : 0;
}

static double app_http_header_timeouts(void *ud) {
    sr_app *app = ud;
    return app->server ? (double)sr_http_server_stats(app->server)->header_timeouts : 0;
}

static double app_http_body_timeouts(void *ud) {
    sr_app *app = ud;
    return app->server ? (double)sr_http_server_stats(app->server)->body_timeouts : 0;
}

static double app_http_request_timeouts(void *ud) {
    sr_app *app = ud;
    return app->server ? (double)sr_http_server_stats(app->server)->request_timeouts : 0;
}

static void app_register_metrics(sr_app *app) {
    char labels[256];
    snprintf(labels, sizeof labels, "version=\"%s\",lua=\"%s\",libuv=\"%s\",lmdb=\"%s\"", SR_VERSION,
             LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "." LUA_VERSION_RELEASE, uv_version_string(),
             sr_store_lmdb_version());
    sr_metric_gauge("smsrules_build_info", "Build information.", labels)->value = 1;
    sr_metric_gauge_fn("smsrules_http_open_connections", "Open HTTP connections.", NULL, app_open_connections, app);
    sr_metric_counter_fn("smsrules_http_read_paused_total",
                         "Times a connection stopped reading because its unsent answers exceeded max_unsent_bytes.",
                         NULL, app_http_read_paused, app);
    static const char timeouts_help[] = "Requests answered 408 and closed, by the timeout that ran out.";
    sr_metric_counter_fn("smsrules_http_timeouts_total", timeouts_help, "timeout=\"header\"", app_http_header_timeouts,
                         app);
    sr_metric_counter_fn("smsrules_http_timeouts_total", timeouts_help, "timeout=\"body\"", app_http_body_timeouts,
                         app);
    sr_metric_counter_fn("smsrules_http_timeouts_total", timeouts_help, "timeout=\"request\"",
                         app_http_request_timeouts, app);
}

/* ---- reload ---- */

int sr_app_reload(sr_app *app, char *err, size_t errlen) {
    sr_rules *old = app->rules;
    if (!old || !old->path) {
        snprintf(err, errlen, "the daemon runs without a rules file: nothing to reload");
        sr_warn("rules reload refused", "error", err);
        return -1;
    }
    sr_config scratch;
    sr_config_init(&scratch);
    sr_rules *fresh = NULL;
    if (sr_rules_load(&fresh, old->path, &scratch, err, errlen) != 0) {
        sr_error("rules reload failed; the old rules keep running", "rules", old->path, "error", err);
        sr_metric_counter("smsrules_rules_reloads_total", "Rules reloads, by result.", "result=\"failed\"")->value++;
        sr_config_free(&scratch);
        return -1;
    }
    sr_config_add_env_api_keys(&scratch);
    /* Live keys change now (logged); the others are kept, each named in a warning (core/config.c's table). */
    sr_config_reload(app->config, &scratch);
    sr_log_set_level((sr_log_level)app->config->log_level);
    sr_config_free(&scratch);
    fresh->config = app->config;
    /* The swap: everything from now on sees the new rules. */
    app->rules = fresh;
    app->api.rules = fresh;
    sr_host_set_current(&app->host, fresh);
    if (app->scheduler) sr_scheduler_set_rules(app->scheduler, fresh);
    if (app->reports) sr_reports_set_rules(app->reports, fresh);
    sr_rules_release(old);
    sr_metric_counter("smsrules_rules_reloads_total", "Rules reloads, by result.", "result=\"ok\"")->value++;
    sr_info("rules reloaded", "rules", fresh->path, "providers", sr_log_num(fresh->provider_count), "templates",
            sr_log_num(fresh->template_count));
    return 0;
}

static void api_admin_reload(sr_api *api, sr_http_request *req, const char *const *params, int n) {
    sr_app *app = APP_OF(api);
    if (!sr_api_require_admin(api, req)) return; /* the admin key, or a console session with its CSRF token */
    char err[512];
    if (sr_app_reload(app, err, sizeof err) != 0) {
        sr_http_respond_error(req, 422, "rules_error", err, NULL);
        return;
    }
    sr_buf body;
    sr_buf_init(&body);
    sr_jw w;
    sr_jw_init(&w, &body);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "status", "reloaded");
    sr_jw_field_str(&w, "rules", app->rules->path);
    sr_jw_field_int(&w, "providers", app->rules->provider_count);
    sr_jw_field_int(&w, "templates", app->rules->template_count);
    sr_jw_object_end(&w);
    sr_http_respond(req, 200, "application/json", body.data, body.len, NULL);
    sr_buf_free(&body);
}

/* ---- lifecycle ---- */

static void app_close_walk(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void app_finish(uv_timer_t *t);

/* The engine drained. This can be reached from inside a store callback,
 * and the store must not be closed from its own callback: finish on the
 * next loop pass. */
static void app_engine_stopped(void *ud) {
    sr_app *app = ud;
    uv_timer_start(&app->finish_timer, app_finish, 0, 0);
}

static void app_finish(uv_timer_t *t) {
    sr_app *app = t->data;
    uv_timer_stop(&app->drain_timer);
    /* Every answer given and every outcome recorded: close the client, flush
     * the store, then let the loop end. */
    /* Handlers still running (status handlers started by the last commits, on any generation) reach
     * nothing through their host from here on. */
    sr_host_drop_client(&app->host);
    app->api.reports = NULL;
    app->api.scheduler = NULL;
    app->api.store = NULL;
    if (app->reports) {
        sr_reports_free(app->reports);
        app->reports = NULL;
    }
    if (app->scheduler) {
        sr_scheduler_free(app->scheduler);
        app->scheduler = NULL;
    }
    if (app->client) {
        sr_http_client_close(app->client);
        app->client = NULL;
    }
    if (app->store) {
        if (app->rs_follower) sr_route_stats_unfollow(app->rs_follower, app->store);
        free(app->rs_follower);
        app->rs_follower = NULL;
        sr_host_close(&app->host);
        sr_store_close(app->store);
        app->store = NULL;
    }
    uv_walk(app->loop, app_close_walk, NULL);
}

/* Expires queued messages whose validity ended before they were sent. */
static int app_expire_mutator(sr_message *m, void *arg) {
    int64_t now = *(const int64_t *)arg;
    if (m->status != SR_ST_QUEUED || m->expires_at_ms == 0 || m->expires_at_ms > now) return SR_E_STATE;
    sr_message_set_str(&m->error, "validity ended before the message was sent");
    sr_message_set_status(m, SR_ST_EXPIRED, now);
    return 0;
}

/* Messages left sending, handlers owed and inbound handlers left pending by a process that is gone
 * (at start: this one's predecessor; in cluster mode also nodes gone silent). */
static void app_take_over(sr_app *app) {
    sr_scheduler_take_over(app->scheduler);
    sr_api_hooks_recover(&app->api);
    sr_rules_status_recover(app->host.current, app->store);
}

static void app_sweep(uv_timer_t *t) {
    sr_app *app = t->data;
    if (!app->store || app->stopping) return;
    static int64_t now;
    now = sr_now_ms();
    char ids[256][SR_ID_LEN + 1];
    int n = sr_store_expired(app->store, now, ids, 256);
    for (int i = 0; i < n; i++) {
        if (!sr_store_mine(app->store, ids[i])) continue; /* cluster: another node expires it */
        sr_store_txn *txn = sr_store_txn_new(app->store);
        sr_store_txn_update_message(txn, ids[i], app_expire_mutator, &now);
        sr_store_txn_submit(txn, NULL, NULL); /* sms.on_status hears of it from the store */
    }
    if (n > 0) sr_info("expired messages", "count", sr_log_num(n));
    if (++app->sweeps % 60 == 0) sr_store_sweep_ttl(app->store, now);
    /* Cluster mode: each node takes its share of the providers' rates; work left by nodes that went
     * silent is taken over by one of the others. */
    if (sr_store_clustered(app->store)) sr_rate_lanes_set_nodes(app->rates, sr_store_cluster_nodes(app->store));
    if (sr_store_clustered(app->store) && app->sweeps % APP_TAKE_OVER_S == 0) app_take_over(app);
}

static double app_store_stat(sr_app *app, int which) {
    if (!app->store) return 0;
    sr_store_stats st;
    sr_store_get_stats(app->store, &st);
    switch (which) {
    case 0: return (double)st.map_used;
    case 1: return (double)st.commits;
    case 2: return (double)st.units;
    case 3: return st.room == UINT64_MAX ? -1 : (double)st.room;
    case 5: return (double)st.stream_seq;
    case 6: return (double)st.retried_units;
    case 7: return (double)st.unavailable_units;
    case 8: return (double)st.nodes;
    default: return (double)st.refused_units;
    }
}
static double app_cluster_seq(void *ud) { return app_store_stat(ud, 5); }
static double app_cluster_retried(void *ud) { return app_store_stat(ud, 6); }
static double app_cluster_unavailable(void *ud) { return app_store_stat(ud, 7); }
static double app_cluster_nodes(void *ud) { return app_store_stat(ud, 8); }
static double app_store_gauge(void *ud) { return app_store_stat(ud, 0); }
static double app_store_commits(void *ud) { return app_store_stat(ud, 1); }
static double app_store_units(void *ud) { return app_store_stat(ud, 2); }
static double app_store_room(void *ud) { return app_store_stat(ud, 3); }
static double app_store_refused(void *ud) { return app_store_stat(ud, 4); }
static double app_store_full(void *ud) {
    sr_app *app = ud;
    return app->store && sr_store_full(app->store) ? 1 : 0;
}

/* A read of the mapped store file that faults at run time (the file cut
 * short by something else, or an I/O error under the map) raises SIGBUS:
 * say so in the log and exit 2, instead of dying without a word. The start-up
 * check then tells what is wrong with the file. Async-signal-safe. */
static char app_sigbus_line[3072];
static size_t app_sigbus_len;

static void app_on_sigbus(int sig) {
    static const char head[] = "{\"ts\":\"";
    char ts[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* Days to a civil date (Howard Hinnant's algorithm): no locale, no locks. */
    long long secs = now.tv_sec, days = secs / 86400, rem = secs % 86400;
    long long z = days + 719468, era = z / 146097, doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365,
              doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    long long y = yoe + era * 400 + (m <= 2);
    long long parts[6] = {y, m, d, rem / 3600, rem / 60 % 60, rem % 60};
    static const char seps[] = "--T::Z";
    size_t len = 0;
    for (int i = 0; i < 6; i++) {
        int width = i == 0 ? 4 : 2;
        for (int k = width - 1; k >= 0; k--) {
            long long v = parts[i];
            for (int j = 0; j < k; j++) v /= 10;
            ts[len++] = (char)('0' + v % 10);
        }
        ts[len++] = seps[i];
    }
    ssize_t rc = write(2, head, sizeof head - 1);
    rc = write(2, ts, len);
    rc = write(2, app_sigbus_line, app_sigbus_len);
    (void)rc;
    (void)sig;
    _exit(2);
}

static void app_guard_sigbus(const char *dir) {
    /* The line after {"ts":"...: the rest of a log line, made now (the handler only writes). */
    sr_buf tail;
    sr_buf_init(&tail);
    sr_jw w;
    sr_jw_init(&w, &tail);
    sr_jw_object_begin(&w);
    sr_jw_field_str(&w, "level", "error");
    sr_jw_field_str(&w, "msg",
                    "the store file could not be read (SIGBUS): it was cut short or the disk failed "
                    "under it; exiting. At the next start the store check says what is wrong; restore "
                    "from a backup if it is damaged");
    size_t dir_len = strlen(dir);
    sr_jw_field_strn(&w, "dir", dir, dir_len < 400 ? dir_len : 400);
    sr_jw_object_end(&w);
    int n = snprintf(app_sigbus_line, sizeof app_sigbus_line, "\",%s\n", sr_buf_cstr(&tail) + 1);
    sr_buf_free(&tail);
    app_sigbus_len = n < 0 ? 0 : (size_t)n < sizeof app_sigbus_line ? (size_t)n : sizeof app_sigbus_line - 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = app_on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

/* The HTTP side drained: let requests to providers finish and record their outcomes. */
static void app_scheduler_stopped(void *ud) {
    sr_app *app = ud;
    if (app->reports) sr_reports_stop(app->reports, app_engine_stopped, app);
    else
        app_engine_stopped(app);
}

static void app_stop_engine(sr_app *app) {
    if (app->engine_stopping) return;
    app->engine_stopping = 1;
    if (app->scheduler) sr_scheduler_stop(app->scheduler, app_scheduler_stopped, app);
    else
        app_scheduler_stopped(app);
}

static void app_stopped(void *ud) {
    sr_app *app = ud;
    app->server_stopped = 1;
    app_stop_engine(app);
}

static void app_drain_deadline(uv_timer_t *t) {
    sr_app *app = t->data;
    sr_warn("drain deadline reached, closing remaining connections and provider requests");
    sr_http_server_abort(app->server);
    /* Requests still out — to providers, or from handlers waiting in
     * sms.http.request — are cancelled: handlers resume with nil,
     * "cancelled" and can answer; messages stay `sending` on disk and are
     * resent after the restart. */
    app_stop_engine(app); /* no new provider requests from here on */
    if (app->scheduler) sr_scheduler_abandon_unrecorded(app->scheduler);
    if (app->client) {
        sr_http_client *c = app->client;
        app->client = NULL;
        sr_host_drop_client(&app->host);
        sr_http_client_close(c);
    }
}

static void app_on_signal(uv_signal_t *h, int signum) {
    sr_app *app = h->data;
    if (signum == SIGHUP) {
        char err[512];
        if (!app->stopping) sr_app_reload(app, err, sizeof err);
        return;
    }
    if (app->stopping) return;
    app->stopping = 1;
    app->api.stopping = 1;
    sr_info("stopping", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", "in_flight",
            sr_log_num(sr_http_server_open_connections(app->server)));
    uv_timer_start(&app->drain_timer, app_drain_deadline, app->config->shutdown_timeout_ms, 0);
    uv_timer_stop(&app->sweep_timer);
    sr_http_server_stop(app->server, app_stopped, app);
}

/* The HTTP server's limits from the configuration; requests go to the router. */
static void app_http_options(sr_app *app, const sr_config *config, sr_http_options *opt) {
    sr_http_options_default(opt);
    opt->max_header_bytes = config->max_header_bytes;
    opt->max_body_bytes = config->max_body_bytes;
    opt->max_connections = config->max_connections;
    opt->header_timeout_ms = config->header_timeout_ms;
    opt->body_timeout_ms = config->body_timeout_ms;
    opt->idle_timeout_ms = config->idle_timeout_ms;
    opt->request_timeout_ms = config->request_timeout_ms;
    opt->max_unsent_bytes = config->max_unsent_bytes;
    opt->handler = app_handle;
    opt->handler_ud = app;
    opt->observer = app_observe;
    opt->observer_ud = app;
}

/* Cluster mode (a non-empty `cluster`): the store's cluster options, and a line in the log naming the mode,
 * the servers (without their credentials) and the node. A node the configuration does not name is named here
 * as the store would name it, "<hostname>-<pid>", in node (nodelen bytes, borrowed by so), so that the log
 * names the node the store runs as. */
static void app_cluster_options(const sr_config *config, sr_store_options *so, char *node, size_t nodelen) {
    if (!config->cluster || !*config->cluster) return;
    if (config->node) {
        sr_str_copy(node, nodelen, config->node);
    } else {
        char host[256];
        if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "smsrules");
        host[sizeof host - 1] = '\0';
        snprintf(node, nodelen, "%s-%ld", host, (long)getpid());
    }
    so->cluster = config->cluster;
    so->cluster_stream = config->cluster_stream;
    so->cluster_replicas = config->cluster_replicas;
    so->node_timeout_ms = config->cluster_node_timeout_ms;
    so->retention_s = config->cluster_retention_s;
    so->node = node;
    char servers[1024];
    sr_config_redact_urls(config->cluster, servers, sizeof servers);
    sr_info("store: cluster mode (NATS JetStream)", "mode", "cluster", "node", node, "servers", servers, "stream",
            so->cluster_stream ? so->cluster_stream : "SMSRULES", "replicas", sr_log_num(so->cluster_replicas));
}

/* Opens the store (0, else the exit code: 2, logged), then rebuilds the route statistics from it. */
static int app_open_store(sr_app *app, const sr_config *config, sr_rules *rules) {
    char err[1024], node[320];
    sr_store_options so;
    memset(&so, 0, sizeof so);
    so.dir = config->data;
    so.map_size = config->map_size;
    so.map_size_max = config->map_size_max;
    so.reserve = config->store_reserve;
    app_cluster_options(config, &so, node, sizeof node);
    int store_rc = sr_store_open(&app->store, app->loop, &so, err, sizeof err);
    if (store_rc != 0) {
        sr_error(store_rc == SR_E_LOCKED    ? "data directory in use: not starting"
                 : store_rc == SR_E_CORRUPT ? "the store is damaged: not starting"
                                            : "cannot open the store",
                 "dir", config->data, "error", err);
        return 2;
    }
    app_guard_sigbus(config->data);
    /* Before the engine sends anything: what the store says happened in the last 24 h. */
    app->route_stats = sr_route_stats_new();
    int rebuilt = sr_route_stats_rebuild(app->route_stats, app->store, rules, sr_now_ms(), APP_ROUTE_STATS_REBUILD_MAX);
    if (rebuilt < 0)
        sr_warn("route statistics: the store could not be read; starting from nothing", "error",
                sr_store_strerror(rebuilt));
    return 0;
}

/* The delivery engine (scheduler, reports), the host the rules act through and the API's context; then
 * what a crash left owed (inbound and status handlers). 0, or 2 (logged). */
static int app_start_engine(sr_app *app, sr_config *config, sr_rules *rules) {
    app->rates = sr_rate_lanes_new();
    sr_rate_lanes_set_nodes(app->rates, sr_store_cluster_nodes(app->store)); /* cluster: heard at open */
    if (sr_http_client_new(&app->client, app->loop) != 0 ||
        sr_scheduler_start(&app->scheduler, app->loop, app->store, rules, app->client, app->rates, config) != 0) {
        sr_error("cannot start the delivery engine");
        return 2;
    }
    if (sr_reports_start(&app->reports, app->loop, app->store, app->rates, rules, app->client, config) != 0) {
        sr_error("cannot start the report engine");
        return 2;
    }
    sr_host_init(&app->host, app->store, app->client, app->route_stats);
    sr_host_set_current(&app->host, rules);
    app->rs_follower = calloc(1, sizeof *app->rs_follower);
    if (!app->rs_follower) abort();
    sr_route_stats_follow(app->rs_follower, app->store, app->route_stats, &app->host.current);
    app->api = (sr_api){.loop = app->loop,
                        .config = config,
                        .rules = rules,
                        .store = app->store,
                        .scheduler = app->scheduler,
                        .reports = app->reports,
                        .route_stats = app->route_stats};
    sr_api_hooks_recover(&app->api);
    sr_rules_status_recover(app->rules, app->store);
    return 0;
}

static void app_register_store_metrics(sr_app *app) {
    sr_metric_gauge_fn("smsrules_store_bytes_used", "Bytes used in the LMDB map.", NULL, app_store_gauge, app);
    sr_metric_counter_fn("smsrules_store_commits_total", "Synced LMDB commits (each holds a batch of units).", NULL,
                         app_store_commits, app);
    sr_metric_counter_fn("smsrules_store_units_total", "Units (all-or-nothing groups of writes) committed.", NULL,
                         app_store_units, app);
    sr_metric_gauge_fn("smsrules_store_full", "1 while the store refuses new data for lack of space (507).", NULL,
                       app_store_full, app);
    sr_metric_gauge_fn("smsrules_store_room_bytes",
                       "Bytes the store can still write (file system free space and map room, the smaller).", NULL,
                       app_store_room, app);
    sr_metric_counter_fn("smsrules_store_refused_total", "Units of writes refused for lack of space.", NULL,
                         app_store_refused, app);
    if (!sr_store_clustered(app->store)) return;
    sr_metric_gauge_fn("smsrules_cluster_nodes", "Cluster mode: live nodes, this one included.", NULL,
                       app_cluster_nodes, app);
    sr_metric_gauge_fn("smsrules_cluster_stream_seq", "Cluster mode: the stream position this node's replica reached.",
                       NULL, app_cluster_seq, app);
    sr_metric_counter_fn("smsrules_cluster_retried_units_total",
                         "Cluster mode: units resolved again because another node changed their message first.", NULL,
                         app_cluster_retried, app);
    sr_metric_counter_fn("smsrules_cluster_unavailable_units_total",
                         "Cluster mode: units the stream did not store in time (503 cluster_unavailable).", NULL,
                         app_cluster_unavailable, app);
}

/* The daemon's own timers and signals. */
static void app_start_handles(sr_app *app) {
    uv_timer_init(app->loop, &app->sweep_timer);
    app->sweep_timer.data = app;
    uv_timer_start(&app->sweep_timer, app_sweep, 1000, 1000);
    uv_timer_init(app->loop, &app->drain_timer);
    app->drain_timer.data = app;
    uv_timer_init(app->loop, &app->finish_timer);
    app->finish_timer.data = app;
    uv_signal_init(app->loop, &app->sig_term);
    uv_signal_init(app->loop, &app->sig_int);
    uv_signal_init(app->loop, &app->sig_hup);
    app->sig_term.data = app->sig_int.data = app->sig_hup.data = app;
    uv_signal_start(&app->sig_term, app_on_signal, SIGTERM);
    uv_signal_start(&app->sig_int, app_on_signal, SIGINT);
    uv_signal_start(&app->sig_hup, app_on_signal, SIGHUP);
}

int sr_app_run(sr_config *config, sr_rules *rules) {
    sr_app app;
    memset(&app, 0, sizeof app);
    app.loop = uv_default_loop();
    app.config = config;
    app.rules = rules;
    signal(SIGPIPE, SIG_IGN);

    char host[256], err[1024];
    int port;
    if (sr_config_split_listen(config->listen, host, sizeof host, &port) != 0) {
        sr_error("invalid listen address (want host:port)", "listen", config->listen);
        sr_rules_release(rules);
        return 1;
    }
    sr_http_options opt;
    app_http_options(&app, config, &opt);
    /* The store first: its lock keeps a second daemon on the same data
     * directory from going further, whatever its listen address. */
    if (app_open_store(&app, config, rules) != 0) {
        uv_run(app.loop, UV_RUN_DEFAULT);
        sr_rules_release(rules);
        return 2;
    }
    if (sr_http_server_start(&app.server, app.loop, host, port, &opt, err, sizeof err) != 0) {
        sr_error("cannot start the HTTP server", "error", err);
        sr_route_stats_free(app.route_stats);
        sr_store_close(app.store);
        uv_run(app.loop, UV_RUN_DEFAULT);
        sr_rules_release(rules);
        return 2;
    }
    if (app_start_engine(&app, config, rules) != 0) return 2;
    app_register_metrics(&app);
    app_register_store_metrics(&app);
    sr_api_console_start(&app.api);
    app_start_handles(&app);

    sr_info("listening", "host", host, "port", sr_log_num(sr_http_server_port(app.server)), "rules",
            rules && rules->path ? rules->path : "", "version", SR_VERSION);

    uv_run(app.loop, UV_RUN_DEFAULT);
    sr_http_server_free(app.server);
    sr_rules_release(app.rules);
    sr_route_stats_free(app.route_stats);
    sr_rate_lanes_free(app.rates);
    uv_loop_close(app.loop);
    sr_metrics_reset();
    sr_info("stopped");
    return app.exit_code;
}
