#include "unit.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define UNIT_MAX_TESTS 512

static struct {
    const char *name;
    void (*fn)(void);
} unit_tests[UNIT_MAX_TESTS];
static int unit_count;

void unit_register(const char *name, void (*fn)(void)) {
    if (unit_count == UNIT_MAX_TESTS) abort();
    unit_tests[unit_count].name = name;
    unit_tests[unit_count].fn = fn;
    unit_count++;
}

int main(int argc, char **argv) {
    const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    const char *only = argc > 1 ? argv[1] : NULL;
    int timeout_s = getenv("UNIT_TIMEOUT_S") ? atoi(getenv("UNIT_TIMEOUT_S")) : 10;
    int failed = 0;
    for (int i = 0; i < unit_count; i++) {
        if (only && strcmp(only, unit_tests[i].name) != 0) continue;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            alarm((unsigned)timeout_s);
            unit_tests[i].fn();
            exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0) {
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            printf("PASS %s:%s\n", prog, unit_tests[i].name);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("FAIL %s:%s: %s\n", prog, unit_tests[i].name,
                       WTERMSIG(status) == SIGALRM ? "timeout" : strsignal(WTERMSIG(status)));
            else
                printf("FAIL %s:%s: exit %d\n", prog, unit_tests[i].name, WEXITSTATUS(status));
        }
    }
    return failed ? 1 : 0;
}
