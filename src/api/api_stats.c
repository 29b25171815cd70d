/* api_stats: GET /v1/stats/routes — the live route quality (route_stats.h)
 * of every provider, per destination country and for all, over the 1m, 15m,
 * 1h and 24h windows, as JSON. Takes an API key like the message API. */
#include "api/api.h"
#include "core/buf.h"
#include "model/message.h"
#include "model/route_stats.h"

void sr_api_stats_routes(sr_api *app, sr_http_request *req, const char *const *params, int n) {
    if (!sr_api_require_key(app, req)) return;
    sr_buf body;
    sr_buf_init(&body);
    sr_route_stats_json(app->route_stats, sr_now_ms(), &body);
    sr_http_respond(req, 200, "application/json", body.data, body.len, NULL);
    sr_buf_free(&body);
}
