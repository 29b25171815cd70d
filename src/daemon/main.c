/* main: the command line — serve, check, version, the strategy lab helpers (and their --help). */
#include <errno.h>
#include <getopt.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "daemon/app.h"
#include "core/config.h"
#include "core/log.h"
#include "tools/backup.h"
#include "tools/cli.h"
#include "tools/mock/mock_provider.h"
#include "rules/rules.h"
#include "tools/sim/sim_fit.h"
#include "tools/sim/sim_report.h"
#include "tools/sim/simulate.h"
#include "tools/test_runner.h"
#include "rules/bindings/bindings.h"

static const char usage_main[] =
    "usage: smsrules COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  serve [-c rules.lua] [--listen HOST:PORT] [--data DIR] [--log-level LEVEL]\n"
    "        [--cluster URLS] [--node NAME]\n"
    "                     run the engine\n"
    "  check rules.lua    load and validate a rules file; exit 1 on error\n"
    "  test FILE...       run rule tests offline (simulated providers, virtual clock)\n"
    "  simulate --models M.json --traffic T.json STRATEGY.lua...\n"
    "                     compare fallback strategies on simulated providers and traffic\n"
    "  mock-provider [--listen HOST:PORT] [...]\n"
    "                     a fake SMS provider for demos, tests and benchmarks\n"
    "  models fit --data DIR [--since 7d] [-o MODELS.json]\n"
    "                     fit provider models for `simulate` from an engine's history\n"
    "  traffic export --data DIR [--since 7d] [-o TRAFFIC.jsonl]\n"
    "                     write what an engine really sent as a traffic file for `simulate`\n"
    "  backup [--data DIR] FILE\n"
    "                     write a consistent copy of the store to FILE, also while the engine runs\n"
    "  restore [--data DIR] FILE\n"
    "                     put a backup back as DIR's store (the engine on DIR stopped)\n"
    "  report-html DOC.json OUT.html\n"
    "                     render a `simulate --json` document as the HTML report (a helper)\n"
    "  version            print the version\n"
    "\n"
    "`smsrules COMMAND --help` describes each command's options.\n"
    "Exit codes: 0 ok, 1 user error (bad rules, bad arguments), 2 runtime failure.\n";

static const char usage_serve[] =
    "usage: smsrules serve [-c rules.lua] [--listen HOST:PORT] [--data DIR] [--log-level LEVEL]\n"
    "                      [--cluster URLS] [--node NAME]\n"
    "\n"
    "Runs the engine: the HTTP API, the store and the rules.\n"
    "  -c, --config FILE     the rules file (Lua); without it the engine runs with no rules\n"
    "  -l, --listen ADDR     address to listen on (default 127.0.0.1:8080; port 0 picks a free one)\n"
    "  -d, --data DIR        data directory (default ./data)\n"
    "      --log-level LVL   debug, info, warn or error (default info)\n"
    "      --cluster URLS    cluster mode (see docs/cluster.md): the NATS JetStream servers,\n"
    "                        comma-separated nats://HOST:PORT or tls://HOST:PORT (default: none,\n"
    "                        a single node on its own store)\n"
    "      --node NAME       this node's name in the cluster: letters, digits, '-', '_', '.'\n"
    "                        (default HOSTNAME-PID)\n"
    "  -h, --help            this help\n"
    "Settings given here win over sms.config{...} in the rules file.\n"
    "Exits 2 when another smsrules holds the data directory (its pid is logged) or when\n"
    "the store file is damaged (the log says what is wrong and how to restore a backup).\n";

static const char usage_check[] =
    "usage: smsrules check rules.lua\n"
    "\n"
    "Loads the rules file in the sandbox, as `serve` would, without serving.\n"
    "Prints `file:line: message` and exits 1 on error; prints a one-line summary on success.\n";

static const char usage_version[] = "usage: smsrules version\n\nPrints the version and the library versions.\n";

static const char usage_report_html[] =
    "usage: smsrules report-html DOC.json OUT.html\n"
    "\n"
    "Renders a document written by `smsrules simulate --json` as the self-contained HTML page\n"
    "`simulate --html` writes (inline SVG charts, nothing fetched when it opens). A helper for\n"
    "re-rendering saved results and for tests; OUT.html `-` writes to stdout.\n";

/* Parses the options shared by serve and check. Returns -1 when it already
 * handled the outcome (help or error) with *exit_code set. */
typedef struct cli_options {
    const char *rules;
    const char *listen;
    const char *data;
    const char *log_level;
    const char *cluster;
    const char *node;
} cli_options;

/* A value for the config key named key, given as option: 0, or 1 (a user error, said on stderr). */
static int check_option(const char *usage, const char *option, const char *key, const char *value) {
    char why[512];
    if (sr_config_check_string(sr_config_key_find(key), value, why, sizeof why) == 0) return 0;
    fprintf(stderr, "smsrules: %s %s\n\n%s", option, why, usage);
    return 1;
}

static int parse_options(int argc, char **argv, const char *usage, int allow_serve_flags, cli_options *o,
                         int *exit_code) {
    static const struct option long_opts[] = {
        {"config", required_argument, NULL, 'c'},  {"listen", required_argument, NULL, 'l'},
        {"data", required_argument, NULL, 'd'},    {"log-level", required_argument, NULL, 'L'},
        {"cluster", required_argument, NULL, 'C'}, {"node", required_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":c:l:d:h", long_opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            fputs(usage, stdout);
            *exit_code = 0;
            return -1;
        case 'c':
            if (!allow_serve_flags) goto unknown;
            o->rules = optarg;
            break;
        case 'l':
            if (!allow_serve_flags) goto unknown;
            o->listen = optarg;
            break;
        case 'd':
            if (!allow_serve_flags) goto unknown;
            o->data = optarg;
            break;
        case 'L':
            if (sr_log_parse_level(optarg) < 0) {
                *exit_code = sr_cli_usage_error(usage, "unknown log level '%s'", optarg);
                return -1;
            }
            o->log_level = optarg;
            break;
        case 'C':
            if (!allow_serve_flags) goto unknown;
            if ((*exit_code = check_option(usage, "--cluster", "cluster", optarg)) != 0) return -1;
            o->cluster = optarg;
            break;
        case 'N':
            if (!allow_serve_flags) goto unknown;
            if ((*exit_code = check_option(usage, "--node", "node", optarg)) != 0) return -1;
            o->node = optarg;
            break;
        case ':': *exit_code = sr_cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]); return -1;
        default:
        unknown:
            *exit_code = sr_cli_usage_error(usage, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
    }
    return 0;
}

/* A server holds a descriptor per connection, per outbound transfer and per
 * LMDB file: the soft open-file limit (often 1024) is raised to the hard one.
 * Returns the limit now in force. */
static rlim_t raise_open_file_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
        struct rlimit raised = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl.rlim_cur = want;
    }
    return rl.rlim_cur;
}

static int cmd_serve(int argc, char **argv) {
    cli_options o;
    int code = 0;
    if (parse_options(argc, argv, usage_serve, 1, &o, &code) < 0) return code;
    if (optind < argc) return sr_cli_usage_error(usage_serve, "unexpected argument '%s'", argv[optind]);
    if (o.log_level) sr_log_set_level((sr_log_level)sr_log_parse_level(o.log_level));

    sr_config config;
    sr_config_init(&config);
    sr_rules *rules = NULL;
    char err[512];
    if (sr_rules_load(&rules, o.rules, &config, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        sr_config_free(&config);
        return 1;
    }
    /* Command-line flags win over sms.config. */
    if (o.listen) sr_config_set_str(&config.listen, o.listen);
    if (o.data) sr_config_set_str(&config.data, o.data);
    if (o.log_level) config.log_level = sr_log_parse_level(o.log_level);
    if (o.cluster) sr_config_set_str(&config.cluster, o.cluster);
    if (o.node) sr_config_set_str(&config.node, o.node);
    /* ... and over a reload's sms.config too. */
    if (o.listen) sr_config_pin(&config, "listen");
    if (o.data) sr_config_pin(&config, "data");
    if (o.log_level) sr_config_pin(&config, "log_level");
    if (o.cluster) sr_config_pin(&config, "cluster");
    if (o.node) sr_config_pin(&config, "node");
    sr_log_set_level((sr_log_level)config.log_level);
    sr_config_add_env_api_keys(&config);
    rlim_t files = raise_open_file_limit();
    if (files && files < (rlim_t)config.max_connections + 256) {
        char have[32], need[32];
        snprintf(have, sizeof have, "%llu", (unsigned long long)files);
        snprintf(need, sizeof need, "%llu", (unsigned long long)config.max_connections + 256);
        sr_warn("open-file limit is below max_connections + 256: connections past it are refused", "limit", have,
                "wanted", need);
    }
    int rc = sr_app_run(&config, rules);
    sr_config_free(&config);
    return rc;
}

static int cmd_check(int argc, char **argv) {
    cli_options o;
    int code = 0;
    if (parse_options(argc, argv, usage_check, 0, &o, &code) < 0) return code;
    if (optind != argc - 1) return sr_cli_usage_error(usage_check, "%s", "check needs exactly one rules file");
    sr_config config;
    sr_config_init(&config);
    sr_rules *rules = NULL;
    char err[512];
    if (sr_rules_load(&rules, argv[optind], &config, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        sr_config_free(&config);
        return 1;
    }
    char summary[512];
    sr_rules_summary(rules, summary, sizeof summary);
    printf("%s\n", summary);
    sr_rules_free(rules);
    sr_config_free(&config);
    return 0;
}

static int cmd_version(int argc, char **argv) {
    cli_options o;
    int code = 0;
    if (parse_options(argc, argv, usage_version, 0, &o, &code) < 0) return code;
    if (optind < argc) return sr_cli_usage_error(usage_version, "unexpected argument '%s'", argv[optind]);
    printf("smsrules %s (%s, libuv %s)\n", SR_VERSION, LUA_RELEASE, uv_version_string());
    return 0;
}

/* Reads a whole file into out; 0, or -1 with a message on stderr. */
static int read_file(const char *path, sr_buf *out) {
    char err[512];
    if (sr_buf_read_file(out, path, NULL, err, sizeof err) == 0) return 0;
    fprintf(stderr, "smsrules: %s\n", err);
    return -1;
}

static int cmd_report_html(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage_report_html, stdout);
        return 0;
    }
    if (argc != 3) return sr_cli_usage_error(usage_report_html, "%s", "report-html needs DOC.json and OUT.html");
    sr_buf text, html;
    sr_buf_init(&text);
    sr_buf_init(&html);
    sr_json_doc doc = {0};
    int code = 1;
    char err[256];
    if (read_file(argv[1], &text) != 0) goto done;
    if (sr_json_parse(&doc, text.data ? text.data : "", text.len, err, sizeof err) != 0) {
        fprintf(stderr, "smsrules: %s: %s\n", argv[1], err);
        goto done;
    }
    if (sr_sim_report_html(doc.root, &html) != 0) {
        fprintf(stderr, "smsrules: %s: not a simulate --json document (no \"strategies\" array of objects)\n", argv[1]);
        goto done;
    }
    code = 2;
    FILE *f = strcmp(argv[2], "-") == 0 ? stdout : fopen(argv[2], "wb");
    if (!f) {
        fprintf(stderr, "smsrules: cannot write %s: %s\n", argv[2], strerror(errno));
        goto done;
    }
    int bad = fwrite(html.data, 1, html.len, f) != html.len;
    bad |= f == stdout ? fflush(f) != 0 : fclose(f) != 0;
    if (bad) fprintf(stderr, "smsrules: cannot write %s\n", argv[2]);
    else
        code = 0;
done:
    sr_json_doc_free(&doc);
    sr_buf_free(&text);
    sr_buf_free(&html);
    return code;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "test") == 0) return sr_test_main(argc - 1, argv + 1);
    if (strcmp(cmd, "simulate") == 0) return sr_simulate_main(argc - 1, argv + 1);
    if (strcmp(cmd, "mock-provider") == 0) {
        raise_open_file_limit();
        return sr_mock_provider_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "models") == 0) return sr_models_main(argc - 1, argv + 1);
    if (strcmp(cmd, "traffic") == 0) return sr_traffic_main(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0) return sr_backup_main(argc - 1, argv + 1);
    if (strcmp(cmd, "restore") == 0) return sr_restore_main(argc - 1, argv + 1);
    if (strcmp(cmd, "report-html") == 0) return cmd_report_html(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) return cmd_version(argc - 1, argv + 1);
    fprintf(stderr, "smsrules: unknown command '%s'\n\n%s", cmd, usage_main);
    return 1;
}
