/* test_runner: `smsrules test FILE...`, the offline test runner for
 * operators' rules.
 *
 * Each test runs the real engine in this process — a fresh store in a
 * temporary folder (removed afterwards), a fresh load of the rules, the real
 * scheduler and the adapters' build_send — with the providers simulated
 * (sr_scheduler_set_transport: outcomes scripted per provider, accepted by
 * default), the real report engine fed delivery reports the test scripts
 * (sr_reports_apply, as the status webhook does; its timer passes run on the
 * virtual clock) and a virtual clock that stands still but for the test's
 * advance() (sr_clock_freeze, sr_clock_advance_ms). After every helper call
 * the loop runs until nothing more happens without time passing.
 *
 * A test file is Lua, sandboxed like rules, with the helpers documented at
 * the top of test_runner.c (test, load_rules, fire, send, inbound, provider,
 * advance, sent, dlr, message, is_optout, now, assert_eq, assert_true,
 * assert_match). The runner prints one line per test, "PASS file:name" or
 * "FAIL file:name: file:line: message", then "N passed, N failed". */
#ifndef SR_TEST_RUNNER_H
#define SR_TEST_RUNNER_H

/* Runs the command: argv[0] is "test", then options and test files. Returns
 * the exit code: 0 all passed, 1 a test failed (or bad arguments), 2 a test
 * file could not be run (unreadable, syntax error, error at its top level). */
int sr_test_main(int argc, char **argv);

#endif
