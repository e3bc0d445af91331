/* The physical floor for bench/cgroups.bench.ts `cgroups.fs_cycle`: the syscalls one cycle of
 * the TypeScript API needs on cgroup v1 cpu + memory, with nothing else around them.
 * One cycle: mkdir in both hierarchies; write cpu.cfs_period_us, cpu.cfs_quota_us and
 * memory.limit_in_bytes; write the pid to both cgroup.procs; write it back to the parent's
 * cgroup.procs; read each cgroup.procs (as delete does) and rmdir both.
 * Usage: cgroup_cycle <root> <parent path> <pid> <milliseconds>; prints cycles per second. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void put(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, data, strlen(data)) < 0) {
    fprintf(stderr, "write %s to %s: %s\n", data, path, strerror(errno));
    exit(1);
  }
  close(fd);
}

static void drain(const char *path) {
  char buf[4096];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { fprintf(stderr, "open %s: %s\n", path, strerror(errno)); exit(1); }
  while (read(fd, buf, sizeof buf) > 0) {}
  close(fd);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: %s root parent pid ms\n", argv[0]); return 2; }
  const char *root = argv[1], *parent = argv[2], *pid = argv[3];
  double budget = atof(argv[4]) / 1000.0;
  const char *ctrl[2] = {"cpu", "memory"};
  char dir[2][512], file[2048];
  for (int i = 0; i < 2; i++) snprintf(dir[i], sizeof dir[i], "%s/%s/%s/cycle-c", root, ctrl[i], parent);
  long cycles = 0;
  double start = now(), t = start;
  while (t - start < budget) {
    for (int i = 0; i < 2; i++)
      if (mkdir(dir[i], 0755) < 0) { fprintf(stderr, "mkdir %s: %s\n", dir[i], strerror(errno)); return 1; }
    snprintf(file, sizeof file, "%s/cpu.cfs_period_us", dir[0]); put(file, "100000");
    snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", dir[0]); put(file, "50000");
    snprintf(file, sizeof file, "%s/memory.limit_in_bytes", dir[1]); put(file, "268435456");
    for (int i = 0; i < 2; i++) { snprintf(file, sizeof file, "%s/cgroup.procs", dir[i]); put(file, pid); }
    for (int i = 0; i < 2; i++) { snprintf(file, sizeof file, "%s/%s/%s/cgroup.procs", root, ctrl[i], parent); put(file, pid); }
    for (int i = 0; i < 2; i++) {
      snprintf(file, sizeof file, "%s/cgroup.procs", dir[i]); drain(file);
      if (rmdir(dir[i]) < 0) { fprintf(stderr, "rmdir %s: %s\n", dir[i], strerror(errno)); return 1; }
    }
    cycles++;
    t = now();
  }
  printf("%.1f\n", cycles / (t - start));
  return 0;
}
