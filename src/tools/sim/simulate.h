/* simulate: `smsrules simulate` — runs fallback strategies (ordinary rules
 * files) through the real engine (rules, scheduler, report engine, store) on a
 * virtual clock, with simulated providers drawn from a models file and
 * traffic from a generator or a JSONL file, and reports what each strategy
 * yields: delivery, time to delivery, cost. Seeded: the same seed gives the
 * same numbers. */
#ifndef SR_SIMULATE_H
#define SR_SIMULATE_H

/* The command: argv[0] is "simulate". Returns the exit code. */
int sr_simulate_main(int argc, char **argv);

#endif
