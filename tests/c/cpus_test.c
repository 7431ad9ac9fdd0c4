/* Test harness: the CPUs the runtime's cgroup reader finds below a fake root (argv[1]: proc/self/cgroup, sys/fs/cgroup). */
#include "kiln_runtime.c"

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: cpus_test ROOT\n"); return 2; }
  printf("%ld\n", cgroup_cpus(argv[1]));
  return 0;
}
