/* The floor for bench/sync.bench.ts `sync.watch_setup_10k_dirs` and `sync.idle_cpu`: a minimal
 * recursive inotify set-up (nftw without following symlinks, one inotify_add_watch per
 * directory, the same event mask as the watch crate), then an idle poll(2) without timeout.
 * Usage: inotify_floor <root> <idle milliseconds>; prints "<dirs> <setup microseconds>". */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

static int fd;
static long dirs;
static const unsigned MASK = IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB |
                             IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                             IN_ONLYDIR | IN_DONT_FOLLOW;

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st; (void)ftw;
  if (type == FTW_D) {
    if (inotify_add_watch(fd, path, MASK) < 0) { perror(path); exit(1); }
    dirs++;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s <root> <idle ms>\n", argv[0]); return 2; }
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0 || nftw(argv[1], visit, 64, FTW_PHYS) != 0) { perror("setup"); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%ld %ld\n", dirs, (b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000L);
  fflush(stdout);
  struct pollfd p = {fd, POLLIN, 0};
  poll(&p, 1, atoi(argv[2]));
  return 0;
}
