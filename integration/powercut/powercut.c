/* powercut: an nbdkit plugin that simulates a power cut harshly.
 *
 * It serves a base image file. Every write since the last flush is kept in
 * memory (reads see it) and reaches the base image only on flush (or on a
 * write with FUA). On a cut the "power goes off": the plugin stops serving
 * (every request, reads included, fails with EIO from then on) and applies
 * a seeded RANDOM SUBSET of the unflushed writes to the base image, each one
 * optionally torn at 512-byte sector boundaries. So the base image ends up
 * in a state a real disk with a volatile write cache may leave after a power
 * loss: everything flushed, plus any subset of the rest, in any order.
 *
 * Trim and write-zeroes are kept like writes of zeros (nothing is punched in
 * the base image before a flush). A write with FUA is the write followed by
 * a flush of everything (and counts as a flush).
 *
 * Usage:
 *   nbdkit -s ./powercut.so [file=]BASE.img [dir=DIR] [name=NAME] [seed=N]
 *          [keep=PERCENT | keep-last=N] [tear=BOOL] [torn=PERCENT]
 *          [tear-sectors=random|even] [reorder=BOOL] [trace=BOOL]
 *          [cut-at-flush=N] [cut-at-write=A-B:N] [cut-after-write=A-B:N]
 *
 * Parameters:
 *   file=PATH        the base image (required; "file=" may be omitted).
 *   name=NAME        label for the log (default: the file's base name); it
 *                    also varies the random stream between instances.
 *   seed=N           seed of the random choices (default 1).
 *   keep=PERCENT     chance that an unflushed write survives a cut
 *                    (default 50).
 *   tear=BOOL        a surviving write may be torn: each of its 512-byte
 *                    sectors (aligned on the device) then survives with
 *                    chance 1/2 (default false).
 *   torn=PERCENT     with tear=true, the chance that a surviving write is
 *                    torn (default 50); keep=100 torn=100 tears every one.
 *   tear-sectors=random|even
 *                    which sectors of a torn write land: each with chance
 *                    1/2 (random, the default), or exactly the even-numbered
 *                    device sectors (even): then any checksummed block of a
 *                    torn write that spans an even and an odd sector (a 4 KiB
 *                    header with its CRC at the end) is certainly broken.
 *   keep-last=N      instead of keep=: the N newest unflushed writes survive
 *                    (torn as above), every older one is lost: a cache that
 *                    wrote back out of order (0 = off, the default).
 *   reorder=BOOL     the surviving writes are applied in a random order
 *                    instead of arrival order, so where two unflushed writes
 *                    overlap either may win (default false).
 *   cut-at-flush=N   the Nth flush request does not happen: the cut takes
 *                    place when it arrives (0 = never).
 *   cut-at-write=A-B:N
 *                    the cut takes place when the Nth write (write, zero or
 *                    trim) touching bytes [A, B) arrives; that write is in
 *                    flight: it joins the unflushed set (it may survive, or
 *                    be torn) and fails with EIO. A and B take size
 *                    suffixes (9M). N=0 or no range = never.
 *   cut-after-write=A-B:N
 *                    the cut takes place at the next request (write, zero,
 *                    trim or flush) this instance gets after the Nth write
 *                    touching [A, B); a write then is in flight as above.
 *                    With keep-last=1 it lands only that next write: e.g.
 *                    a data write that wrongly did not wait for the flush
 *                    of a record written just before it.
 *                    cut-at-write and cut-after-write share one range: the
 *                    last one given wins.
 *   trace=BOOL       append one line per write, zero, trim and flush to
 *                    DIR/trace-NAME (needs dir=).
 *   dir=DIR          a control folder shared by the instances that serve the
 *                    PVs of one machine, so they lose power together:
 *     DIR/cut        exists once the power is off. The instance that cuts
 *                    creates it (a test may create it too: "cut now"); every
 *                    instance checks it before each request, and at close,
 *                    and cuts itself when it is there.
 *     DIR/counters   "flushes N\nrange-writes M\n": the counts the cut-at-*
 *                    triggers compare with, shared by all instances (flock).
 *     DIR/arm        optional; "key=value" lines (every parameter but file,
 *                    dir and name) that replace the command
 *                    line's values whenever the file changes (re-read when
 *                    its inode or mtime changes). To arm exactly, a test
 *                    takes flock(LOCK_EX) on DIR/counters, writes it back as
 *                    zeros, renames a new DIR/arm into place and unlocks:
 *                    counting then starts at the arm.
 *     DIR/log        one line appended per instance on a cut or a clean
 *                    close, with what happened to its unflushed writes.
 *   Without dir=, the counters are the instance's own, from its start.
 *
 * A close with no cut (the client disconnected cleanly) applies every
 * unflushed write, as a disk does on an orderly shutdown.
 *
 * Build: cc -shared -fPIC -o powercut.so powercut.c (Debian nbdkit-plugin-dev);
 * meson builds it as build/integration/powercut/powercut.so when found.
 */
#define _GNU_SOURCE
#define NBDKIT_API_VERSION 2

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-plugin.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_SERIALIZE_ALL_REQUESTS
#define SECTOR 512

struct triggers {
  uint64_t seed;
  unsigned keep, torn;
  bool tear, reorder, trace, even_sectors;
  uint64_t keep_last;
  uint64_t cut_at_flush;
  uint64_t range_lo, range_hi, cut_at_range_write;
  bool after; /* cut-after-write rather than cut-at-write */
};

/* Configuration. */
static char *base_path;
static char *dir;
static char *name;
static struct triggers trig = {.seed = 1, .keep = 50, .torn = 50};

/* State (one connection at a time: requests are serialized). */
struct pending {
  uint64_t offset;
  uint32_t length;
  char *data; /* NULL: zeros */
};
static int base_fd = -1;
static int64_t base_size;
static struct pending *pend;
static size_t npend, cappend;
static bool is_cut;
static bool cut_next; /* cut-after-write: the next request cuts */
static uint64_t local_flushes, local_range_writes; /* without dir= */
static struct stat arm_seen;
static uint64_t rng_state;

/* splitmix64: small, good enough, reproducible. */
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static char *path_in_dir(const char *leaf) {
  char *p;
  if (asprintf(&p, "%s/%s", dir, leaf) < 0) return NULL;
  return p;
}

static int set_option(struct triggers *t, const char *key, const char *value) {
  if (strcmp(key, "seed") == 0) return nbdkit_parse_uint64_t("seed", value, &t->seed);
  if (strcmp(key, "keep") == 0 || strcmp(key, "torn") == 0) {
    unsigned *v = key[0] == 'k' ? &t->keep : &t->torn;
    if (nbdkit_parse_unsigned(key, value, v) == -1) return -1;
    if (*v > 100) {
      nbdkit_error("%s=%s: a percentage (0-100)", key, value);
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "tear") == 0 || strcmp(key, "reorder") == 0 || strcmp(key, "trace") == 0) {
    int b = nbdkit_parse_bool(value);
    if (b == -1) return -1;
    if (strcmp(key, "tear") == 0) t->tear = b;
    else if (key[0] == 'r') t->reorder = b;
    else t->trace = b;
    return 0;
  }
  if (strcmp(key, "tear-sectors") == 0) {
    if (strcmp(value, "random") != 0 && strcmp(value, "even") != 0) {
      nbdkit_error("tear-sectors=%s: random or even", value);
      return -1;
    }
    t->even_sectors = value[0] == 'e';
    return 0;
  }
  if (strcmp(key, "keep-last") == 0) return nbdkit_parse_uint64_t("keep-last", value, &t->keep_last);
  if (strcmp(key, "cut-at-flush") == 0) return nbdkit_parse_uint64_t("cut-at-flush", value, &t->cut_at_flush);
  if (strcmp(key, "cut-at-write") == 0 || strcmp(key, "cut-after-write") == 0) {
    t->after = strcmp(key, "cut-after-write") == 0;
    char *copy = strdup(value), *dash, *colon;
    int r = -1;
    if (!copy) return -1;
    dash = strchr(copy, '-');
    colon = strrchr(copy, ':');
    if (dash && colon && dash < colon) {
      int64_t lo, hi;
      *dash = *colon = '\0';
      lo = nbdkit_parse_size(copy);
      hi = nbdkit_parse_size(dash + 1);
      if (lo >= 0 && hi > lo &&
          nbdkit_parse_uint64_t("cut-at-write count", colon + 1, &t->cut_at_range_write) == 0) {
        t->range_lo = (uint64_t)lo;
        t->range_hi = (uint64_t)hi;
        r = 0;
      }
    }
    if (r == -1) nbdkit_error("%s=%s: expected A-B:N (bytes [A, B), the Nth write)", key, value);
    free(copy);
    return r;
  }
  nbdkit_error("unknown parameter '%s'", key);
  return -1;
}

static int powercut_config(const char *key, const char *value) {
  if (strcmp(key, "file") == 0) {
    free(base_path);
    base_path = nbdkit_absolute_path(value);
    return base_path ? 0 : -1;
  }
  if (strcmp(key, "dir") == 0) {
    free(dir);
    dir = nbdkit_absolute_path(value);
    return dir ? 0 : -1;
  }
  if (strcmp(key, "name") == 0) {
    free(name);
    name = strdup(value);
    return name ? 0 : -1;
  }
  return set_option(&trig, key, value);
}

static int powercut_config_complete(void) {
  if (!base_path) {
    nbdkit_error("file=BASE.img is required");
    return -1;
  }
  if (!name) {
    const char *slash = strrchr(base_path, '/');
    name = strdup(slash ? slash + 1 : base_path);
    if (!name) return -1;
  }
  base_fd = open(base_path, O_RDWR | O_CLOEXEC);
  if (base_fd == -1) {
    nbdkit_error("open %s: %m", base_path);
    return -1;
  }
  struct stat st;
  if (fstat(base_fd, &st) == -1) {
    nbdkit_error("stat %s: %m", base_path);
    return -1;
  }
  base_size = st.st_size;
  return 0;
}

static void powercut_unload(void) {
  for (size_t i = 0; i < npend; ++i) free(pend[i].data);
  free(pend);
  if (base_fd >= 0) close(base_fd);
  free(base_path);
  free(dir);
  free(name);
}

/* Re-reads DIR/arm when it changed since the last look. */
static void reload_arm(void) {
  if (!dir) return;
  char *p = path_in_dir("arm");
  struct stat st;
  if (!p) return;
  if (stat(p, &st) == 0 &&
      (st.st_ino != arm_seen.st_ino || st.st_mtim.tv_sec != arm_seen.st_mtim.tv_sec ||
       st.st_mtim.tv_nsec != arm_seen.st_mtim.tv_nsec || st.st_size != arm_seen.st_size)) {
    FILE *f = fopen(p, "r");
    if (f) {
      struct triggers t = {.seed = trig.seed, .keep = 50, .torn = 50};
      char line[512];
      bool ok = true;
      while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (line[0] == '\0' || line[0] == '#') continue;
        if (!eq) {
          ok = false;
          continue;
        }
        *eq = '\0';
        if (set_option(&t, line, eq + 1) == -1) ok = false;
      }
      fclose(f);
      if (ok) {
        trig = t;
        cut_next = false;
      }
      else nbdkit_error("%s: ignored (bad line)", p);
      arm_seen = st;
    }
  }
  free(p);
}

static bool power_is_off(void) {
  if (is_cut) return true;
  if (!dir) return false;
  char *p = path_in_dir("cut");
  bool off = p && access(p, F_OK) == 0;
  free(p);
  return off;
}

/* Adds 1 to the flush (which=0) or range-write (which=1) counter, shared
 * through DIR/counters; returns the new value. */
static uint64_t count(int which) {
  if (!dir) return which == 0 ? ++local_flushes : ++local_range_writes;
  char *p = path_in_dir("counters");
  uint64_t v[2] = {0, 0};
  int fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
  free(p);
  if (fd == -1) {
    nbdkit_error("%s: cannot open the counters: %m", dir);
    return 0;
  }
  flock(fd, LOCK_EX);
  reload_arm(); /* an arm written under this lock starts from zero */
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n > 0) {
    buf[n] = '\0';
    sscanf(buf, "flushes %" SCNu64 " range-writes %" SCNu64, &v[0], &v[1]);
  }
  v[which]++;
  int len = snprintf(buf, sizeof buf, "flushes %" PRIu64 "\nrange-writes %" PRIu64 "\n", v[0], v[1]);
  if (ftruncate(fd, 0) == -1 || pwrite(fd, buf, (size_t)len, 0) != len)
    nbdkit_error("%s: cannot update the counters: %m", dir);
  flock(fd, LOCK_UN);
  close(fd);
  return v[which];
}

static void append_log(const char *line) {
  nbdkit_debug("%s", line);
  if (!dir) {
    fprintf(stderr, "powercut: %s\n", line);
    return;
  }
  char *p = path_in_dir("log");
  int fd = p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
  free(p);
  if (fd == -1) return;
  size_t len = strlen(line);
  if (write(fd, line, len) != (ssize_t)len || write(fd, "\n", 1) != 1) { /* best effort */
  }
  close(fd);
}

static int write_base(const char *data, uint64_t length, uint64_t offset) {
  static char zeros[64 * 1024];
  while (length > 0) {
    size_t n = data ? length : (length < sizeof zeros ? length : sizeof zeros);
    ssize_t r = pwrite(base_fd, data ? data : zeros, n, (off_t)offset);
    if (r <= 0) {
      nbdkit_error("%s: write at %" PRIu64 ": %m", base_path, offset);
      return -1;
    }
    if (data) data += r;
    length -= (uint64_t)r;
    offset += (uint64_t)r;
  }
  return 0;
}

static void drop_pending(void) {
  for (size_t i = 0; i < npend; ++i) free(pend[i].data);
  npend = 0;
}

static int apply_all(void) {
  for (size_t i = 0; i < npend; ++i)
    if (write_base(pend[i].data, pend[i].length, pend[i].offset) == -1) return -1;
  drop_pending();
  return 0;
}

/* The power goes off: a random subset of the unflushed writes lands. */
static void cut(const char *reason) {
  if (is_cut) return;
  is_cut = true;
  uint64_t h = 1469598103934665603ULL; /* FNV-1a of the name */
  for (const char *c = name; *c; ++c) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
  rng_state = trig.seed * 0x100000001b3ULL ^ h;

  size_t *order = malloc((npend ? npend : 1) * sizeof *order);
  if (!order) abort();
  for (size_t i = 0; i < npend; ++i) order[i] = i;
  if (trig.reorder)
    for (size_t i = npend; i > 1; --i) {
      size_t j = (size_t)(rnd() % i), t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
  unsigned applied = 0, torn = 0, dropped = 0;
  char kept_list[400] = "";
  size_t kl = 0;
  for (size_t k = 0; k < npend; ++k) {
    const struct pending *w = &pend[order[k]];
    const char *what = "dropped";
    const bool lost = trig.keep_last ? order[k] + trig.keep_last < npend : rnd() % 100 >= trig.keep;
    if (lost) {
      dropped++;
    } else if (trig.tear && rnd() % 100 < trig.torn) {
      torn++;
      what = "torn";
      /* Each device sector of the write lands or not. */
      for (uint64_t at = w->offset; at < w->offset + w->length;) {
        uint64_t next = (at / SECTOR + 1) * SECTOR;
        if (next > w->offset + w->length) next = w->offset + w->length;
        if (trig.even_sectors ? at / SECTOR % 2 == 0 : rnd() % 2) write_base(w->data ? w->data + (at - w->offset) : NULL, next - at, at);
        at = next;
      }
    } else {
      applied++;
      what = "applied";
      write_base(w->data, w->length, w->offset);
    }
    if (kl < sizeof kept_list - 64)
      kl += (size_t)snprintf(kept_list + kl, sizeof kept_list - kl, " %s%" PRIu64 "+%" PRIu32 ":%s",
                             w->data ? "" : "z", w->offset, w->length, what);
  }
  free(order);
  char line[700];
  snprintf(line, sizeof line, "%s: cut (%s): %zu unflushed writes: %u applied, %u torn, %u dropped;%s%s", name,
           reason, npend, applied, torn, dropped, kept_list, kl >= sizeof kept_list - 64 ? " ..." : "");
  append_log(line);
  drop_pending();
  if (dir) {
    char *p = path_in_dir("cut");
    int fd = p ? open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) close(fd);
    free(p);
  }
}

static bool off_now(void) {
  if (power_is_off()) {
    cut("power off");
    nbdkit_set_error(EIO);
    return true;
  }
  return false;
}

static void *powercut_open(int readonly) {
  (void)readonly;
  return &base_fd;
}

static void powercut_close(void *handle) {
  (void)handle;
  if (power_is_off()) {
    cut("power off, at close");
    return;
  }
  char line[200];
  size_t n = npend;
  apply_all();
  snprintf(line, sizeof line, "%s: clean close: %zu unflushed writes applied", name, n);
  append_log(line);
}

static int64_t powercut_get_size(void *handle) {
  (void)handle;
  return base_size;
}

static int yes(void *handle) {
  (void)handle;
  return 1;
}

static int powercut_can_fua(void *handle) {
  (void)handle;
  return NBDKIT_FUA_NATIVE;
}

static int powercut_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags) {
  (void)handle;
  (void)flags;
  if (off_now()) return -1;
  char *out = buf;
  for (uint64_t done = 0; done < count;) {
    ssize_t r = pread(base_fd, out + done, count - done, (off_t)(offset + done));
    if (r < 0) {
      nbdkit_error("%s: read: %m", base_path);
      return -1;
    }
    if (r == 0) { /* past the end of a sparse tail: zeros */
      memset(out + done, 0, count - done);
      break;
    }
    done += (uint64_t)r;
  }
  /* Overlay the unflushed writes, oldest first, so the newest wins. */
  for (size_t i = 0; i < npend; ++i) {
    const struct pending *w = &pend[i];
    uint64_t lo = w->offset > offset ? w->offset : offset;
    uint64_t hi = w->offset + w->length < offset + count ? w->offset + w->length : offset + count;
    if (lo >= hi) continue;
    if (w->data) memcpy(out + (lo - offset), w->data + (lo - w->offset), hi - lo);
    else memset(out + (lo - offset), 0, hi - lo);
  }
  return 0;
}

static void trace(const char *kind, uint64_t offset, uint64_t length) {
  if (!trig.trace || !dir) return;
  char leaf[300], line[100];
  snprintf(leaf, sizeof leaf, "trace-%s", name);
  char *p = path_in_dir(leaf);
  int fd = p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
  free(p);
  if (fd == -1) return;
  int len = snprintf(line, sizeof line, "%s %" PRIu64 " %" PRIu64 "\n", kind, offset, length);
  if (write(fd, line, (size_t)len) != len) { /* best effort */
  }
  close(fd);
}

static int do_flush(void) {
  if (off_now()) return -1;
  reload_arm();
  trace("F", 0, 0);
  if (cut_next) {
    cut("at the flush after the armed write");
    nbdkit_set_error(EIO);
    return -1;
  }
  uint64_t n = count(0);
  if (trig.cut_at_flush && n == trig.cut_at_flush) {
    char reason[80];
    snprintf(reason, sizeof reason, "at flush %" PRIu64, n);
    cut(reason);
    nbdkit_set_error(EIO);
    return -1;
  }
  if (apply_all() == -1) {
    nbdkit_set_error(EIO);
    return -1;
  }
  return 0;
}

/* A write, zero or trim (data NULL): kept until the next flush. */
static int add_write(const void *data, uint32_t count_, uint64_t offset, uint32_t flags) {
  if (off_now()) return -1;
  if (count_ == 0) return 0;
  if ((uint64_t)base_size < offset || (uint64_t)base_size - offset < count_) {
    nbdkit_set_error(ENOSPC);
    return -1;
  }
  reload_arm();
  trace(data ? "W" : "Z", offset, count_);
  bool hit = cut_next, after_hit = false;
  uint64_t n = 0;
  if (!hit && trig.cut_at_range_write && offset < trig.range_hi && offset + count_ > trig.range_lo) {
    n = count(1);
    if (n == trig.cut_at_range_write) {
      if (trig.after) after_hit = true;
      else hit = true;
    }
  }
  if (npend == cappend) {
    size_t c = cappend ? 2 * cappend : 64;
    struct pending *p = realloc(pend, c * sizeof *p);
    if (!p) {
      nbdkit_set_error(ENOMEM);
      return -1;
    }
    pend = p;
    cappend = c;
  }
  struct pending w = {offset, count_, NULL};
  if (data) {
    w.data = malloc(count_);
    if (!w.data) {
      nbdkit_set_error(ENOMEM);
      return -1;
    }
    memcpy(w.data, data, count_);
  }
  pend[npend++] = w;
  if (after_hit) cut_next = true;
  if (hit) {
    char reason[120];
    if (cut_next) snprintf(reason, sizeof reason, "at the write after the armed write");
    else snprintf(reason, sizeof reason, "at write %" PRIu64 " to bytes %" PRIu64 "-%" PRIu64, n, trig.range_lo,
                  trig.range_hi);
    cut(reason);
    nbdkit_set_error(EIO);
    return -1;
  }
  if (flags & NBDKIT_FLAG_FUA) return do_flush();
  return 0;
}

static int powercut_pwrite(void *handle, const void *buf, uint32_t count_, uint64_t offset, uint32_t flags) {
  (void)handle;
  return add_write(buf, count_, offset, flags);
}

static int powercut_zero(void *handle, uint32_t count_, uint64_t offset, uint32_t flags) {
  (void)handle;
  return add_write(NULL, count_, offset, flags);
}

static int powercut_trim(void *handle, uint32_t count_, uint64_t offset, uint32_t flags) {
  (void)handle;
  return add_write(NULL, count_, offset, flags);
}

static int powercut_flush(void *handle, uint32_t flags) {
  (void)handle;
  (void)flags;
  return do_flush();
}

static struct nbdkit_plugin plugin = {
    .name = "powercut",
    .longname = "vgfs power-cut simulator",
    .version = "1.0",
    .description = "keeps unflushed writes in memory; a cut lands a random subset, optionally torn",
    .config = powercut_config,
    .config_complete = powercut_config_complete,
    .config_help =
        "file=BASE.img [dir=DIR] [name=NAME] [seed=N] [keep=PERCENT | keep-last=N] [tear=BOOL] [torn=PERCENT]\n"
        "[tear-sectors=random|even] [reorder=BOOL] [trace=BOOL]\n"
        "[cut-at-flush=N] [cut-at-write=A-B:N] [cut-after-write=A-B:N]",
    .magic_config_key = "file",
    .unload = powercut_unload,
    .open = powercut_open,
    .close = powercut_close,
    .get_size = powercut_get_size,
    .can_write = yes,
    .can_flush = yes,
    .can_trim = yes,
    .can_zero = yes,
    .can_fua = powercut_can_fua,
    .pread = powercut_pread,
    .pwrite = powercut_pwrite,
    .zero = powercut_zero,
    .trim = powercut_trim,
    .flush = powercut_flush,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
