/* kiln C runtime, hosted: the core (kiln_core.c, included) plus safetensors weights, .npy I/O, messages and a pthreads pool
   (libc, libm, pthreads). */
#define _POSIX_C_SOURCE 200809L
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include "kiln_runtime.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KILN_HOSTED
#include "kiln_core.c"

/* ---------------------------------------------------------------- errors */

static char err_msg[1024];

const char *kiln_error(void) { return err_msg; }

int kiln_fail(int code, const char *msg) {
  strncpy(err_msg, msg, sizeof err_msg - 1);
  return code;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_msg, sizeof err_msg, fmt, ap);
  va_end(ap);
  return code;
}


static const char *st_code(kiln_dtype d) { return d == KILN_F32 ? "F32" : d == KILN_I32 ? "I32" : d == KILN_I8 ? "I8" : "BOOL"; }

/* "[784, 64]" into buf */
static const char *shape_str(char *buf, size_t cap, int rank, const long *shape) {
  size_t n = 0;
  int i;
  n += (size_t)snprintf(buf + n, cap - n, "[");
  for (i = 0; i < rank && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %ld" : "%ld", shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

/* fopen opens a directory for reading; its "size" is not a file's */
static int is_dir(FILE *f) {
  struct stat st;
  return fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---------------------------------------------- safetensors header (JSON) */

/* The header as the reference parser (huggingface/safetensors) reads it: a JSON object of tensor entries
   {"dtype", "shape", "data_offsets"} and at most one "__metadata__" object of strings. */

typedef struct {
  char *name;  /* decoded in place inside the header buffer */
  char *dtype;
  int rank;
  long shape[KILN_MAX_RANK];
  unsigned long long begin, end;
} st_entry;

typedef struct {
  char *s, *start, *end;
  const char *err;
  const char *tensor; /* the entry being parsed, for messages */
  st_entry *t;
  int n, cap;
} jparser;

static void jws(jparser *p) {
  while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int jerr(jparser *p, const char *msg) {
  if (!p->err) p->err = msg;
  return 0;
}

static int jexpect(jparser *p, char c) {
  jws(p);
  if (p->s >= p->end || *p->s != c) {
    static char msg[32];
    snprintf(msg, sizeof msg, "expected '%c'", c);
    return jerr(p, msg);
  }
  p->s++;
  return 1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int jhex4(jparser *p, unsigned *v) {
  int i;
  *v = 0;
  if (p->end - p->s < 4) return jerr(p, "truncated \\u escape");
  for (i = 0; i < 4; i++) {
    int h = hexval(p->s[i]);
    if (h < 0) return jerr(p, "bad \\u escape");
    *v = *v * 16 + (unsigned)h;
  }
  p->s += 4;
  return 1;
}

/* Parses a string, decoding it in place (the decoded bytes never outrun the source); *out is NUL-terminated. */
static int jstring(jparser *p, char **out) {
  char *w;
  jws(p);
  if (p->s >= p->end || *p->s != '"') return jerr(p, "expected a string");
  w = ++p->s;
  *out = w;
  for (;;) {
    unsigned char c;
    if (p->s >= p->end) return jerr(p, "unterminated string");
    c = (unsigned char)*p->s++;
    if (c == '"') break;
    if (c < 0x20) return jerr(p, "control character in string");
    if (c != '\\') { *w++ = (char)c; continue; }
    if (p->s >= p->end) return jerr(p, "unterminated string");
    c = (unsigned char)*p->s++;
    switch (c) {
      case '"': case '\\': case '/': *w++ = (char)c; break;
      case 'b': *w++ = '\b'; break;
      case 'f': *w++ = '\f'; break;
      case 'n': *w++ = '\n'; break;
      case 'r': *w++ = '\r'; break;
      case 't': *w++ = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (!jhex4(p, &cp)) return 0;
        if (cp >= 0xD800 && cp < 0xDC00) {
          if (p->end - p->s < 2 || p->s[0] != '\\' || p->s[1] != 'u') return jerr(p, "unpaired surrogate");
          p->s += 2;
          if (!jhex4(p, &lo)) return 0;
          if (lo < 0xDC00 || lo >= 0xE000) return jerr(p, "unpaired surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return jerr(p, "unpaired surrogate");
        }
        if (cp == 0) return jerr(p, "NUL character in string");
        if (cp < 0x80) *w++ = (char)cp;
        else if (cp < 0x800) { *w++ = (char)(0xC0 | (cp >> 6)); *w++ = (char)(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
          *w++ = (char)(0xE0 | (cp >> 12)); *w++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *w++ = (char)(0x80 | (cp & 0x3F));
        } else {
          *w++ = (char)(0xF0 | (cp >> 18)); *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
          *w++ = (char)(0x80 | ((cp >> 6) & 0x3F)); *w++ = (char)(0x80 | (cp & 0x3F));
        }
        break;
      }
      default: return jerr(p, "bad escape in string");
    }
  }
  *w = '\0'; /* w < p->s: the closing quote, already consumed, is at or after w */
  return 1;
}

static int jdigit(const jparser *p) { return p->s < p->end && *p->s >= '0' && *p->s <= '9'; }

/* A non-negative integer below 2^53 written as JSON writes one (no sign, leading zero, fraction or exponent):
   what the reference parser reads into a usize. */
static int juint(jparser *p, unsigned long long *v) {
  jws(p);
  if (!jdigit(p)) return jerr(p, "expected a non-negative integer");
  if (*p->s == '0' && p->end - p->s > 1 && p->s[1] >= '0' && p->s[1] <= '9') return jerr(p, "integer with a leading zero");
  *v = 0;
  while (jdigit(p)) {
    *v = *v * 10 + (unsigned long long)(*p->s++ - '0');
    if (*v > (1ULL << 53)) return jerr(p, "integer too large");
  }
  if (p->s < p->end && (*p->s == '.' || *p->s == 'e' || *p->s == 'E')) return jerr(p, "expected an integer");
  return 1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jnumber(jparser *p) {
  if (p->s < p->end && *p->s == '-') p->s++;
  if (!jdigit(p)) return jerr(p, "bad number");
  if (*p->s++ != '0')
    while (jdigit(p)) p->s++;
  if (p->s < p->end && *p->s == '.') {
    p->s++;
    if (!jdigit(p)) return jerr(p, "bad number");
    while (jdigit(p)) p->s++;
  }
  if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
    p->s++;
    if (p->s < p->end && (*p->s == '+' || *p->s == '-')) p->s++;
    if (!jdigit(p)) return jerr(p, "bad number");
    while (jdigit(p)) p->s++;
  }
  return 1;
}

/* Any JSON value (a tensor entry's other keys, which the reference parser ignores). */
static int jskip(jparser *p, int depth) {
  char *dummy;
  if (depth > 64) return jerr(p, "nested too deeply");
  jws(p);
  if (p->s >= p->end) return jerr(p, "expected a value");
  switch (*p->s) {
    case '"': return jstring(p, &dummy);
    case '{':
      p->s++;
      jws(p);
      if (p->s < p->end && *p->s == '}') { p->s++; return 1; }
      for (;;) {
        if (!jstring(p, &dummy) || !jexpect(p, ':') || !jskip(p, depth + 1)) return 0;
        jws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        return jexpect(p, '}');
      }
    case '[':
      p->s++;
      jws(p);
      if (p->s < p->end && *p->s == ']') { p->s++; return 1; }
      for (;;) {
        if (!jskip(p, depth + 1)) return 0;
        jws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        return jexpect(p, ']');
      }
    default: {
      static const char *const words[] = {"true", "false", "null"};
      int i;
      for (i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(p->end - p->s) >= n && memcmp(p->s, words[i], n) == 0) { p->s += n; return 1; }
      }
      if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) return jnumber(p);
      return jerr(p, "expected a value");
    }
  }
}

/* [a, b, ...] of non-negative integers, at most max of them */
static int juint_array(jparser *p, unsigned long long *v, int max, int *count) {
  *count = 0;
  if (!jexpect(p, '[')) return 0;
  jws(p);
  if (p->s < p->end && *p->s == ']') { p->s++; return 1; }
  for (;;) {
    if (*count == max) return jerr(p, max == KILN_MAX_RANK ? "shape has too many dimensions" : "too many values in an array");
    if (!juint(p, &v[(*count)++])) return 0;
    jws(p);
    if (p->s < p->end && *p->s == ',') { p->s++; continue; }
    return jexpect(p, ']');
  }
}

static int jtensor(jparser *p, st_entry *t) {
  int have_dtype = 0, have_shape = 0, have_offsets = 0, i, n;
  unsigned long long v[KILN_MAX_RANK];
  if (!jexpect(p, '{')) return 0;
  jws(p);
  if (p->s < p->end && *p->s == '}') return jerr(p, "tensor entry is empty");
  for (;;) {
    char *key;
    if (!jstring(p, &key) || !jexpect(p, ':')) return 0;
    if (strcmp(key, "dtype") == 0) {
      if (have_dtype++) return jerr(p, "duplicate key \"dtype\"");
      jws(p);
      if (p->s >= p->end || *p->s != '"') return jerr(p, "dtype must be a string");
      if (!jstring(p, &t->dtype)) return 0;
    } else if (strcmp(key, "shape") == 0) {
      if (have_shape++) return jerr(p, "duplicate key \"shape\"");
      if (!juint_array(p, v, KILN_MAX_RANK, &n)) return 0;
      for (i = 0; i < n; i++) t->shape[i] = (long)v[i]; /* below 2^53 */
      t->rank = n;
    } else if (strcmp(key, "data_offsets") == 0) {
      if (have_offsets++) return jerr(p, "duplicate key \"data_offsets\"");
      if (!juint_array(p, v, 2, &n)) return 0;
      if (n != 2) return jerr(p, "data_offsets must have two values");
      t->begin = v[0];
      t->end = v[1];
    } else if (!jskip(p, 1)) {
      return 0;
    }
    jws(p);
    if (p->s < p->end && *p->s == ',') { p->s++; continue; }
    if (!jexpect(p, '}')) return 0;
    break;
  }
  if (!have_dtype || !have_shape || !have_offsets) return jerr(p, "tensor entry needs dtype, shape and data_offsets");
  return 1;
}

/* "__metadata__": an object of strings (the reference parser reads a map of strings) */
static int jmetadata(jparser *p) {
  char *s;
  jws(p);
  if (p->s >= p->end || *p->s != '{') return jerr(p, "__metadata__ must be an object of strings");
  p->s++;
  jws(p);
  if (p->s < p->end && *p->s == '}') { p->s++; return 1; }
  for (;;) {
    if (!jstring(p, &s) || !jexpect(p, ':')) return 0;
    jws(p);
    if (p->s >= p->end || *p->s != '"') return jerr(p, "__metadata__ values must be strings");
    if (!jstring(p, &s)) return 0;
    jws(p);
    if (p->s < p->end && *p->s == ',') { p->s++; continue; }
    return jexpect(p, '}');
  }
}

static int jheader(jparser *p) {
  int have_metadata = 0;
  if (!jexpect(p, '{')) return 0;
  jws(p);
  if (p->s < p->end && *p->s == '}') {
    p->s++;
  } else {
    for (;;) {
      char *key;
      if (!jstring(p, &key) || !jexpect(p, ':')) return 0;
      if (strcmp(key, "__metadata__") == 0) {
        if (have_metadata++) return jerr(p, "duplicate key \"__metadata__\"");
        if (!jmetadata(p)) return 0;
      } else {
        st_entry *t;
        if (p->n == p->cap) {
          int cap = p->cap ? 2 * p->cap : 16;
          st_entry *grown = p->cap < INT_MAX / 2 ? (st_entry *)realloc(p->t, (size_t)cap * sizeof *grown) : NULL;
          if (!grown) return jerr(p, "out of memory");
          p->t = grown;
          p->cap = cap;
        }
        t = &p->t[p->n++];
        memset(t, 0, sizeof *t);
        t->name = key;
        p->tensor = key;
        if (!jtensor(p, t)) return 0;
        p->tensor = NULL;
      }
      jws(p);
      if (p->s < p->end && *p->s == ',') { p->s++; continue; }
      if (!jexpect(p, '}')) return 0;
      break;
    }
  }
  jws(p);
  if (p->s != p->end) return jerr(p, "unexpected text after the header object");
  return 1;
}

/* ----------------------------------------------------------- weights load */

/* The dtypes of the reference parser and their bits per element. */
static const struct { const char *name; int bits; } st_dtypes[] = {
    {"BOOL", 8}, {"U8", 8}, {"I8", 8}, {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16}, {"U16", 16},
    {"F16", 16}, {"BF16", 16}, {"I32", 32}, {"U32", 32}, {"F32", 32}, {"F64", 64}, {"I64", 64}, {"U64", 64},
    {"C64", 64}, {"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6}};

static int st_bits(const char *dtype) {
  size_t i;
  for (i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
    if (strcmp(dtype, st_dtypes[i].name) == 0) return st_dtypes[i].bits;
  return 0;
}

/* Index of the first byte that does not continue valid UTF-8 (overlong forms, surrogates and code points past
   U+10FFFF are invalid), or n. */
static size_t utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0, k, need;
  while (i < n) {
    unsigned long c = s[i], cp, min;
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
    else return i;
    if (n - i <= need) return i;
    for (k = 1; k <= need; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += need + 1;
  }
  return n;
}

/* A name from a file for a one-line message: control characters escaped, long names cut. */
static const char *shown(char *buf, size_t cap, const char *s) {
  size_t n = 0;
  for (; *s && n + 8 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7F) n += (size_t)snprintf(buf + n, cap - n, "\\x%02x", c);
    else buf[n++] = (char)c;
  }
  if (*s) memcpy(buf + n, "...", 4);
  else buf[n] = '\0';
  return buf;
}

static int by_name(const void *a, const void *b) { return strcmp((*(const st_entry *const *)a)->name, (*(const st_entry *const *)b)->name); }

static int by_offsets(const void *a, const void *b) {
  const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* Loads every param from a safetensors file checked as strictly as the reference parser checks it (the header
   length, valid UTF-8 JSON, known dtypes, each tensor's bytes = its elements x its dtype size, offsets contiguous
   from 0 and covering the data exactly, no duplicate names), then each param's dtype and shape against the
   model. Tensors the model has no param for (an optimizer's state) are checked and ignored. */
static int load_weights(const kiln_model_desc *m, unsigned char *mem, const char *path) {
  FILE *f = fopen(path, "rb");
  unsigned char len8[8];
  unsigned long long hlen = 0, data_bytes, at;
  long file_bytes;
  char *head = NULL, nm[200], s1[160], s2[160];
  st_entry **idx = NULL;
  const st_entry **found = NULL;
  jparser p;
  size_t valid;
  int i, j, rc = KILN_OK;

  memset(&p, 0, sizeof p);
  if (!f) return fail(KILN_ERR_IO, "%s: cannot open weights: %s", path, strerror(errno));
  if (is_dir(f)) {
    rc = fail(KILN_ERR_IO, "%s: cannot read weights: it is a directory", path);
    goto done;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (file_bytes = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    rc = fail(KILN_ERR_IO, "%s: cannot read weights: %s", path, strerror(errno));
    goto done;
  }
  if (file_bytes < 8 || fread(len8, 1, 8, f) != 8) {
    rc = fail(KILN_ERR_FORMAT, "%s: file is shorter than its 8-byte header length (%ld bytes)", path, file_bytes);
    goto done;
  }
  for (i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
  if (hlen > (unsigned long long)(file_bytes - 8)) {
    rc = fail(KILN_ERR_FORMAT, "%s: header of %llu bytes runs past the end of the file (%ld bytes)", path, hlen, file_bytes);
    goto done;
  }
  if (hlen > 100000000ULL) {
    rc = fail(KILN_ERR_FORMAT, "%s: header of %llu bytes is larger than 100 MB", path, hlen);
    goto done;
  }
  data_bytes = (unsigned long long)file_bytes - 8 - hlen;
  head = (char *)malloc((size_t)hlen + 1);
  if (!head) { rc = fail(KILN_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path, hlen); goto done; }
  if (fread(head, 1, (size_t)hlen, f) != (size_t)hlen) {
    rc = fail(KILN_ERR_IO, "%s: cannot read the header", path);
    goto done;
  }
  head[hlen] = '\0';
  if ((valid = utf8_valid((const unsigned char *)head, (size_t)hlen)) != (size_t)hlen) {
    rc = fail(KILN_ERR_FORMAT, "%s: header is not valid UTF-8 (byte %lu)", path, (unsigned long)valid);
    goto done;
  }
  p.s = p.start = head;
  p.end = head + hlen;
  if (!jheader(&p)) {
    if (p.tensor)
      rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s': malformed header JSON at byte %ld: %s", path, shown(nm, sizeof nm, p.tensor),
                (long)(p.s - p.start), p.err ? p.err : "?");
    else
      rc = fail(KILN_ERR_FORMAT, "%s: malformed header JSON at byte %ld: %s", path, (long)(p.s - p.start), p.err ? p.err : "?");
    goto done;
  }
  if ((p.n && !(idx = (st_entry **)malloc((size_t)p.n * sizeof *idx))) ||
      (m->n_params && !(found = (const st_entry **)malloc((size_t)m->n_params * sizeof *found)))) {
    rc = fail(KILN_ERR_NOMEM, "%s: out of memory for %d tensors", path, p.n);
    goto done;
  }

  /* each tensor on its own: a known dtype, offsets inside the data, as many bytes as its shape needs */
  for (i = 0; i < p.n; i++) {
    st_entry *t = &p.t[i];
    unsigned long long elems = 1, bits = (unsigned long long)st_bits(t->dtype);
    idx[i] = t;
    if (!bits) {
      rc = fail(KILN_ERR_DTYPE, "%s: tensor '%s' has unknown dtype '%s'", path, shown(nm, sizeof nm, t->name), shown(s1, sizeof s1, t->dtype));
      goto done;
    }
    if (t->begin > t->end || t->end > data_bytes) {
      rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s' has data offsets [%llu, %llu] outside the data section of %llu bytes",
                path, shown(nm, sizeof nm, t->name), t->begin, t->end, data_bytes);
      goto done;
    }
    for (j = 0; j < t->rank; j++) {
      if (t->shape[j] && elems > ULLONG_MAX / 64 / (unsigned long long)t->shape[j]) {
        rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s' has shape %s: too many elements", path, shown(nm, sizeof nm, t->name),
                  shape_str(s1, sizeof s1, t->rank, t->shape));
        goto done;
      }
      elems *= (unsigned long long)t->shape[j];
    }
    if (elems * bits % 8 != 0) {
      rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s' of shape %s and dtype %s does not fill whole bytes", path,
                shown(nm, sizeof nm, t->name), shape_str(s1, sizeof s1, t->rank, t->shape), t->dtype);
      goto done;
    }
    if (t->end - t->begin != elems * bits / 8) {
      rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s' has data offsets [%llu, %llu] (%llu bytes), but shape %s of %s needs %llu bytes",
                path, shown(nm, sizeof nm, t->name), t->begin, t->end, t->end - t->begin, shape_str(s1, sizeof s1, t->rank, t->shape),
                t->dtype, elems * bits / 8);
      goto done;
    }
  }
  /* names unique; each param's tensor found by binary search (a header may hold millions of entries) */
  if (p.n) qsort(idx, (size_t)p.n, sizeof *idx, by_name);
  for (i = 1; i < p.n; i++)
    if (strcmp(idx[i]->name, idx[i - 1]->name) == 0) {
      rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s' appears twice in the header", path, shown(nm, sizeof nm, idx[i]->name));
      goto done;
    }
  for (i = 0; i < m->n_params; i++) {
    st_entry key, *kp = &key, **hit;
    key.name = (char *)m->params[i].name;
    hit = p.n ? (st_entry **)bsearch(&kp, idx, (size_t)p.n, sizeof *idx, by_name) : NULL;
    found[i] = hit ? *hit : NULL;
  }
  /* the data section: tensors back to back from byte 0 to its end, without gaps, overlaps or trailing bytes */
  if (p.n) qsort(idx, (size_t)p.n, sizeof *idx, by_offsets);
  for (i = 0, at = 0; i < p.n; at = idx[i++]->end)
    if (idx[i]->begin != at) {
      rc = fail(KILN_ERR_FORMAT, "%s: tensor '%s' has data offsets [%llu, %llu], but the tensors before it end at byte %llu "
                "(offsets must be contiguous from 0, without gaps or overlaps)", path, shown(nm, sizeof nm, idx[i]->name),
                idx[i]->begin, idx[i]->end, at);
      goto done;
    }
  if (at != data_bytes) {
    rc = fail(KILN_ERR_FORMAT, "%s: the data section has %llu bytes, but the tensors cover only %llu (no bytes may follow them)",
              path, data_bytes, at);
    goto done;
  }

  for (i = 0; i < m->n_params; i++) {
    const kiln_tensor *w = &m->params[i];
    const st_entry *t = found[i];
    size_t need = (size_t)w->size * (size_t)kiln_dtype_size(w->dtype);
    int same = 1;
    if (!t) { rc = fail(KILN_ERR_MISSING, "%s: no tensor '%s'", path, shown(nm, sizeof nm, w->name)); goto done; }
    if (strcmp(t->dtype, st_code(w->dtype)) != 0) {
      rc = fail(KILN_ERR_DTYPE, "%s: tensor '%s' has dtype %s, expected %s", path, shown(nm, sizeof nm, w->name), t->dtype, st_code(w->dtype));
      goto done;
    }
    if (t->rank != w->rank) same = 0;
    for (j = 0; j < t->rank && same; j++) same = t->shape[j] == w->shape[j];
    if (!same) {
      rc = fail(KILN_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", path, shown(nm, sizeof nm, w->name),
                shape_str(s1, sizeof s1, t->rank, t->shape), shape_str(s2, sizeof s2, w->rank, w->shape));
      goto done;
    }
    if (fseek(f, (long)(8 + hlen + t->begin), SEEK_SET) != 0 || fread(mem + w->offset, 1, need, f) != need) {
      rc = fail(KILN_ERR_IO, "%s: cannot read tensor '%s'", path, shown(nm, sizeof nm, w->name));
      goto done;
    }
  }
done:
  free(found);
  free(idx);
  free(p.t);
  free(head);
  fclose(f);
  return rc;
}

void (*kiln_grads_hook)(long from);

void kiln_grads_ready(long from) {
  if (kiln_grads_hook) kiln_grads_hook(from);
}

int kiln_init(const kiln_model_desc *m, unsigned char *mem, const char *weights_path) {
  int rc;
  err_msg[0] = '\0';
  if ((rc = init_memory(m, mem, weights_path != NULL))) return rc;
  return weights_path ? load_weights(m, mem, weights_path) : KILN_OK;
}

/* ------------------------------------------------------ atomic file output */

/* An output file is written to DEST.<pid>.tmp beside DEST and renamed over it only once complete, so a failure
   (a full disk, a directory in the way) leaves no partial file and whatever DEST held before. DEST is the path, or
   for a symbolic link the file it points to: the link stays a link and its target gets the new contents. An existing
   DEST that is not a regular file (/dev/stdout, a pipe) is written in place: a rename would replace the device.
   wopen, wput, wfinish write the temporary file; wcommit renames it into place, wdiscard removes it. */
typedef struct { FILE *f; const char *path; char *dest, *tmp; int err; } wfile;

static int wopen(wfile *w, const char *path, const char *what) {
  struct stat st;
  memset(w, 0, sizeof *w);
  w->path = path;
  if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && !(w->dest = realpath(path, NULL)))
    return fail(KILN_ERR_IO, "%s: cannot write %s: it is a symbolic link that does not resolve (%s)", path, what, strerror(errno));
  if (stat(w->dest ? w->dest : path, &st) == 0 && !S_ISREG(st.st_mode)) {
    free(w->dest);
    w->dest = NULL;
    if (S_ISDIR(st.st_mode)) return fail(KILN_ERR_IO, "%s: cannot write %s: it is a directory", path, what);
    if (!(w->f = fopen(path, "wb"))) return fail(KILN_ERR_IO, "%s: cannot write %s: %s", path, what, strerror(errno));
    return KILN_OK;
  }
  if (!w->dest && !(w->dest = strdup(path))) return fail(KILN_ERR_NOMEM, "%s: out of memory", path);
  if (!(w->tmp = (char *)malloc(strlen(w->dest) + 32))) {
    free(w->dest);
    w->dest = NULL;
    return fail(KILN_ERR_NOMEM, "%s: out of memory", path);
  }
  sprintf(w->tmp, "%s.%ld.tmp", w->dest, (long)getpid());
  if (!(w->f = fopen(w->tmp, "wb"))) {
    int e = errno;
    free(w->tmp);
    free(w->dest);
    w->tmp = w->dest = NULL;
    return fail(KILN_ERR_IO, "%s: cannot write %s: %s", path, what, strerror(e));
  }
  return KILN_OK;
}

static void wput(wfile *w, const void *data, size_t n) {
  if (!w->err && n && fwrite(data, 1, n, w->f) != n) w->err = errno ? errno : EIO;
}

/* Removes the temporary file, if any. */
static void wdiscard(wfile *w) {
  if (w->f) fclose(w->f);
  if (w->tmp) remove(w->tmp);
  free(w->tmp);
  free(w->dest);
  memset(w, 0, sizeof *w);
}

/* Closes the file (with durable: on disk first, as a trained weights file must survive a crash); on failure
   removes the temporary file, with one message. */
static int wfinish(wfile *w, const char *what, int durable) {
  if (!w->err && fflush(w->f) != 0) w->err = errno ? errno : EIO;
  if (!w->err && durable && w->tmp && fsync(fileno(w->f)) != 0) w->err = errno;
  if (fclose(w->f) != 0 && !w->err) w->err = errno ? errno : EIO;
  w->f = NULL;
  if (!w->err) return KILN_OK;
  fail(KILN_ERR_IO, "%s: cannot write %s: %s", w->path, what, strerror(w->err));
  wdiscard(w);
  return KILN_ERR_IO;
}

/* Renames a finished temporary file into place. */
static int wcommit(wfile *w, const char *what) {
  int rc = KILN_OK;
  if (w->tmp && rename(w->tmp, w->dest) != 0) rc = fail(KILN_ERR_IO, "%s: cannot write %s: %s", w->path, what, strerror(errno));
  else { /* in place now: nothing to remove */
    free(w->tmp);
    w->tmp = NULL;
  }
  wdiscard(w);
  return rc;
}

static int wclose(wfile *w, const char *what, int durable) {
  int rc = wfinish(w, what, durable);
  return rc ? rc : wcommit(w, what);
}

/* ----------------------------------------------------------- weights save */

typedef struct { char *s; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *grown;
    while (b->n + n + 1 > cap) cap *= 2;
    grown = (char *)realloc(b->s, cap);
    if (!grown) { b->oom = 1; return; }
    b->s = grown;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string as JavaScript's JSON.stringify writes it. */
static void sb_json(sbuf *b, const char *s) {
  char esc[8];
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"') sb_str(b, "\\\"");
    else if (c == '\\') sb_str(b, "\\\\");
    else if (c == '\b') sb_str(b, "\\b");
    else if (c == '\f') sb_str(b, "\\f");
    else if (c == '\n') sb_str(b, "\\n");
    else if (c == '\r') sb_str(b, "\\r");
    else if (c == '\t') sb_str(b, "\\t");
    else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); sb_str(b, esc); }
    else sb_put(b, (const char *)&c, 1);
  }
  sb_put(b, "\"", 1);
}

int kiln_save_weights(const kiln_model_desc *m, const unsigned char *mem, const char *path) {
  sbuf b = {NULL, 0, 0, 0};
  char num[64];
  unsigned char len8[8];
  unsigned long long at = 0;
  wfile out;
  int i, j, rc = KILN_OK;
  if ((rc = check_desc(m))) return rc;
  if (!mem || !path) return fail(KILN_ERR_ARG, "kiln_save_weights: memory or path is NULL");
  sb_str(&b, "{\"__metadata__\":{\"format\":\"kiln\"}");
  for (i = 0; i < m->n_params; i++) {
    const kiln_tensor *w = &m->params[i];
    unsigned long long bytes = (unsigned long long)w->size * (unsigned long long)kiln_dtype_size(w->dtype);
    sb_str(&b, ",");
    sb_json(&b, w->name);
    sb_str(&b, ":{\"dtype\":\"");
    sb_str(&b, st_code(w->dtype));
    sb_str(&b, "\",\"shape\":[");
    for (j = 0; j < w->rank; j++) {
      snprintf(num, sizeof num, j ? ",%ld" : "%ld", w->shape[j]);
      sb_str(&b, num);
    }
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", at, at + bytes);
    sb_str(&b, num);
    at += bytes;
  }
  sb_str(&b, "}");
  while ((b.n + 8) % 8 != 0) sb_str(&b, " "); /* data starts 8-byte aligned */
  if (b.oom) { free(b.s); return fail(KILN_ERR_NOMEM, "%s: out of memory for the header", path); }
  for (i = 0; i < 8; i++) len8[i] = (unsigned char)(((unsigned long long)b.n >> (8 * i)) & 0xFF);

  if ((rc = wopen(&out, path, "weights"))) { free(b.s); return rc; }
  wput(&out, len8, 8);
  wput(&out, b.s, b.n);
  for (i = 0; i < m->n_params; i++)
    wput(&out, mem + m->params[i].offset, (size_t)m->params[i].size * (size_t)kiln_dtype_size(m->params[i].dtype));
  free(b.s);
  return wclose(&out, "weights", 1);
}

/* ------------------------------------------------------------------ .npy */

/* Parses the Python dict literal of a .npy header: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } */
typedef struct { const char *s, *end; } pyparser;

static void pws(pyparser *p) {
  while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int pstr(pyparser *p, char *out, size_t cap) {
  char q;
  size_t n = 0;
  pws(p);
  if (p->s >= p->end || (*p->s != '\'' && *p->s != '"')) return 0;
  q = *p->s++;
  while (p->s < p->end && *p->s != q) {
    if (n + 1 >= cap) return 0;
    out[n++] = *p->s++;
  }
  if (p->s >= p->end) return 0;
  p->s++;
  out[n] = '\0';
  return 1;
}

static int pchar(pyparser *p, char c) {
  pws(p);
  if (p->s < p->end && *p->s == c) { p->s++; return 1; }
  return 0;
}

static int npy_header(const char *path, const char *h, size_t n, char *descr, int *fortran, int *rank, long shape[KILN_MAX_RANK]) {
  pyparser p;
  int have = 0;
  p.s = h;
  p.end = h + n;
  if (!pchar(&p, '{')) return fail(KILN_ERR_FORMAT, "%s: .npy header is not a dict", path);
  for (;;) {
    char key[32];
    if (pchar(&p, '}')) break;
    if (!pstr(&p, key, sizeof key) || !pchar(&p, ':')) return fail(KILN_ERR_FORMAT, "%s: malformed .npy header", path);
    if ((strcmp(key, "descr") == 0 && (have & 1)) || (strcmp(key, "fortran_order") == 0 && (have & 2)) || (strcmp(key, "shape") == 0 && (have & 4)))
      return fail(KILN_ERR_FORMAT, "%s: key '%s' appears twice in the .npy header", path, key);
    if (strcmp(key, "descr") == 0) {
      if (!pstr(&p, descr, 16)) return fail(KILN_ERR_FORMAT, "%s: .npy descr is not a simple dtype string (structured arrays are not supported)", path);
      have |= 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      pws(&p);
      if (p.end - p.s >= 4 && memcmp(p.s, "True", 4) == 0) { *fortran = 1; p.s += 4; }
      else if (p.end - p.s >= 5 && memcmp(p.s, "False", 5) == 0) { *fortran = 0; p.s += 5; }
      else return fail(KILN_ERR_FORMAT, "%s: malformed fortran_order in .npy header", path);
      have |= 2;
    } else if (strcmp(key, "shape") == 0) {
      *rank = 0;
      if (!pchar(&p, '(')) return fail(KILN_ERR_FORMAT, "%s: malformed shape in .npy header", path);
      for (;;) {
        long v = 0;
        if (pchar(&p, ')')) break;
        pws(&p);
        if (p.s >= p.end || *p.s < '0' || *p.s > '9') return fail(KILN_ERR_FORMAT, "%s: malformed shape in .npy header", path);
        while (p.s < p.end && *p.s >= '0' && *p.s <= '9') {
          if (v > (LONG_MAX - 9) / 10) return fail(KILN_ERR_FORMAT, "%s: dimension too large in .npy header", path);
          v = v * 10 + (*p.s++ - '0');
        }
        if (p.s < p.end && *p.s == 'L') p.s++; /* Python 2 longs */
        if (*rank == KILN_MAX_RANK) return fail(KILN_ERR_SHAPE, "%s: arrays of more than %d dimensions are not supported", path, KILN_MAX_RANK);
        shape[(*rank)++] = v;
        if (!pchar(&p, ',')) {
          if (pchar(&p, ')')) break;
          return fail(KILN_ERR_FORMAT, "%s: malformed shape in .npy header", path);
        }
      }
      have |= 4;
    } else {
      return fail(KILN_ERR_FORMAT, "%s: unexpected key '%s' in .npy header", path, key);
    }
    if (!pchar(&p, ',')) {
      if (pchar(&p, '}')) break;
      return fail(KILN_ERR_FORMAT, "%s: malformed .npy header", path);
    }
  }
  if (have != 7) return fail(KILN_ERR_FORMAT, "%s: .npy header lacks descr, fortran_order or shape", path);
  pws(&p);
  if (p.s != p.end) return fail(KILN_ERR_FORMAT, "%s: unexpected text after the .npy header dict", path);
  return KILN_OK;
}

int kiln_npy_read(const char *path, kiln_dtype *dtype, int *rank, long shape[KILN_MAX_RANK], void **data) {
  FILE *f;
  unsigned char pre[12];
  unsigned long hlen;
  long file_bytes, count = 1, big = 0;
  char *h = NULL, descr[16], s1[160];
  int fortran = 0, src_size, rc, i;
  long k;
  kiln_dtype dt;
  unsigned char *raw = NULL;

  if (!path || !dtype || !rank || !shape || !data) return fail(KILN_ERR_ARG, "kiln_npy_read: NULL argument");
  *data = NULL;
  f = fopen(path, "rb");
  if (!f) return fail(KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (is_dir(f)) {
    rc = fail(KILN_ERR_IO, "%s: cannot read: it is a directory", path);
    goto done;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (file_bytes = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
    rc = fail(KILN_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    goto done;
  }
  if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    rc = fail(KILN_ERR_FORMAT, "%s: not a .npy file", path);
    goto done;
  }
  if (pre[7] != 0 || pre[6] < 1 || pre[6] > 3) {
    rc = fail(KILN_ERR_FORMAT, "%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
    goto done;
  }
  if (pre[6] == 1) {
    hlen = (unsigned long)pre[8] | ((unsigned long)pre[9] << 8);
  } else {
    if (fread(pre + 10, 1, 2, f) != 2) { rc = fail(KILN_ERR_FORMAT, "%s: truncated .npy header", path); goto done; }
    hlen = (unsigned long)pre[8] | ((unsigned long)pre[9] << 8) | ((unsigned long)pre[10] << 16) | ((unsigned long)pre[11] << 24);
  }
  if (hlen > 1000000UL || (long)hlen > file_bytes) { rc = fail(KILN_ERR_FORMAT, "%s: truncated .npy header", path); goto done; }
  h = (char *)malloc(hlen + 1);
  if (!h) { rc = fail(KILN_ERR_NOMEM, "%s: out of memory", path); goto done; }
  if (fread(h, 1, hlen, f) != hlen) { rc = fail(KILN_ERR_FORMAT, "%s: truncated .npy header", path); goto done; }
  h[hlen] = '\0';
  if ((rc = npy_header(path, h, hlen, descr, &fortran, rank, shape))) goto done;

  if (strcmp(descr, "<f4") == 0) { dt = KILN_F32; src_size = 4; }
  else if (strcmp(descr, "<i4") == 0) { dt = KILN_I32; src_size = 4; }
  else if (strcmp(descr, "|b1") == 0) { dt = KILN_BOOL; src_size = 1; }
  else if (strcmp(descr, "|i1") == 0) { dt = KILN_I8; src_size = 1; }
  else if (strcmp(descr, "<f8") == 0) { dt = KILN_F32; src_size = 8; }
  else if (strcmp(descr, "<i8") == 0) { dt = KILN_I32; src_size = 8; }
  else {
    rc = fail(KILN_ERR_DTYPE, "%s: unsupported dtype '%s' (kiln reads <f4, <i4, |b1, |i1, <f8, <i8)", path, descr);
    goto done;
  }
  for (i = 0; i < *rank; i++) {
    if (shape[i] > 1) big++;
    if (shape[i] > 0 && count > LONG_MAX / 8 / shape[i]) { rc = fail(KILN_ERR_FORMAT, "%s: array too large", path); goto done; }
    count *= shape[i];
  }
  if (fortran && big > 1) {
    rc = fail(KILN_ERR_FORMAT, "%s: Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray)", path);
    goto done;
  }
  if (file_bytes - ftell(f) != count * src_size) {
    rc = fail(KILN_ERR_FORMAT, "%s: data is %s: shape %s of %s needs %ld bytes, the file has %ld", path,
              file_bytes - ftell(f) < count * src_size ? "truncated" : "followed by extra bytes", shape_str(s1, sizeof s1, *rank, shape),
              descr, count * src_size, file_bytes - ftell(f));
    goto done;
  }
  raw = (unsigned char *)malloc((size_t)(count ? count : 1) * (size_t)src_size);
  if (!raw) { rc = fail(KILN_ERR_NOMEM, "%s: out of memory", path); goto done; }
  if (fread(raw, (size_t)src_size, (size_t)count, f) != (size_t)count) {
    rc = fail(KILN_ERR_IO, "%s: cannot read the data", path);
    goto done;
  }
  if (src_size == 8) { /* convert in place, front to back (the destination never overtakes the source) */
    for (k = 0; k < count; k++) {
      if (dt == KILN_F32) {
        double d;
        float v;
        memcpy(&d, raw + 8 * (size_t)k, 8);
        v = (float)d;
        memcpy(raw + 4 * (size_t)k, &v, 4);
      } else {
        int64_t d;
        int32_t v;
        memcpy(&d, raw + 8 * (size_t)k, 8);
        if (d < INT32_MIN || d > INT32_MAX) {
          rc = fail(KILN_ERR_DTYPE, "%s: int64 value %lld at index %ld does not fit int32", path, (long long)d, k);
          goto done;
        }
        v = (int32_t)d;
        memcpy(raw + 4 * (size_t)k, &v, 4);
      }
    }
  } else if (dt == KILN_BOOL) {
    for (k = 0; k < count; k++) raw[k] = raw[k] != 0;
  }
  *dtype = dt;
  *data = raw;
  raw = NULL;
  rc = KILN_OK;
done:
  free(raw);
  free(h);
  fclose(f);
  return rc;
}

/* Writes one .npy to the temporary file of w (opened here). */
static int npy_put(wfile *w, const kiln_npy_file *o) {
  char h[1024]; /* 32 dimensions of up to 19 digits fit */
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
  int n, i, pad, rc;
  long count = 1;
  if (!o->path || (o->rank && !o->shape) || o->rank < 0 || o->rank > KILN_MAX_RANK) return fail(KILN_ERR_ARG, "kiln_npy_write: bad arguments");
  n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
               o->dtype == KILN_F32 ? "<f4" : o->dtype == KILN_I32 ? "<i4" : o->dtype == KILN_I8 ? "|i1" : "|b1"); /* int8 as |b1 read back as bools */
  for (i = 0; i < o->rank; i++) {
    if (o->shape[i] < 0) return fail(KILN_ERR_ARG, "kiln_npy_write: negative dimension");
    n += snprintf(h + n, sizeof h - (size_t)n, i ? ", %ld" : "%ld", o->shape[i]);
    count *= o->shape[i];
  }
  n += snprintf(h + n, sizeof h - (size_t)n, "%s), }", o->rank == 1 ? "," : "");
  if (o->rank > 0) { /* NumPy leaves room for the first dimension to grow to 21 digits */
    char first[32];
    int grow = 21 - snprintf(first, sizeof first, "%ld", o->shape[0]);
    for (i = 0; i < grow; i++) h[n++] = ' ';
  }
  pad = 64 - (10 + n + 1) % 64; /* as NumPy: the data starts 64-byte aligned */
  for (i = 0; i < pad; i++) h[n++] = ' ';
  h[n++] = '\n';
  if (count && !o->data) return fail(KILN_ERR_ARG, "kiln_npy_write: data is NULL");
  if ((rc = wopen(w, o->path, ".npy"))) return rc;
  pre[8] = (unsigned char)(n & 0xFF);
  pre[9] = (unsigned char)(n >> 8);
  wput(w, pre, 10);
  wput(w, h, (size_t)n);
  wput(w, o->data, (size_t)count * (size_t)kiln_dtype_size(o->dtype));
  return wfinish(w, ".npy", 0);
}

int kiln_npy_write_all(int n, const kiln_npy_file *files) {
  wfile *w;
  int i, j, rc = KILN_OK;
  if (n < 0 || (n && !files)) return fail(KILN_ERR_ARG, "kiln_npy_write_all: bad arguments");
  for (i = 0; i < n; i++)
    for (j = 0; j < i; j++)
      if (files[i].path && files[j].path && strcmp(files[i].path, files[j].path) == 0)
        return fail(KILN_ERR_ARG, "%s: two outputs would be written to this one file", files[i].path);
  if (!(w = (wfile *)calloc(n ? (size_t)n : 1, sizeof *w))) return fail(KILN_ERR_NOMEM, "out of memory");
  /* every file complete beside its destination before any is renamed: a failure leaves every old output as it was */
  for (i = 0; i < n && !rc; i++) rc = npy_put(&w[i], &files[i]);
  for (i = 0; i < n && !rc; i++) rc = wcommit(&w[i], ".npy");
  for (; i < n; i++) wdiscard(&w[i]);
  free(w);
  return rc;
}

int kiln_npy_write(const char *path, kiln_dtype dtype, int rank, const long *shape, const void *data) {
  kiln_npy_file f;
  f.path = path;
  f.dtype = dtype;
  f.rank = rank;
  f.shape = shape;
  f.data = data;
  return kiln_npy_write_all(1, &f);
}

/* ---------------------------------------------------------- thread pool */

#include <sched.h>

typedef struct {
  pthread_mutex_t mu, call_mu;
  pthread_cond_t wake, done;
  int threads;           /* including the calling thread */
  int spin;              /* busy-wait rounds before sleeping (0 when threads outnumber the CPUs we may use) */
  unsigned long gen;     /* job generation; bumped (under mu) to start a job */
  int pending;           /* workers still running the current job */
  void (*fn)(long, long, void *);
  void *ctx;
  long n;
} kiln_pool;

static kiln_pool pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0, 0, 0, NULL, NULL, 0};
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static __thread int in_pool; /* set on workers, and on the caller while it runs its chunk */

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* One spin round; every 64th gives the CPU to another runnable thread (one of ours or another process's, when
   the machine is busier than it looks) instead of watching it not run. */
static void spin_round(int i) {
  cpu_relax();
  if ((i & 63) == 63) sched_yield();
}

/* The number in a cgroup file ("max": -1), and in *b the second one when b is given; *a unchanged if unreadable. */
static void read_quota(const char *path, long *a, long *b) {
  char buf[64];
  size_t n;
  FILE *f = fopen(path, "r");
  if (!f) return;
  n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  if (strncmp(buf, "max", 3) == 0) {
    *a = -1;
    if (b) sscanf(buf + 3, "%ld", b);
  } else if (b) {
    sscanf(buf, "%ld %ld", a, b);
  } else {
    sscanf(buf, "%ld", a);
  }
}

/* The tightest CPU quota, in CPUs rounded up, of cgroup directory dir and its ancestors down to its first base
   bytes (the mount point); 0 when none is set. v2: cpu.max "quota period"; v1: cpu.cfs_quota_us, cpu.cfs_period_us. */
static long quota_up(char *dir, size_t base, int v2) {
  long best = 0;
  for (;;) {
    char file[4300];
    char *slash;
    long quota = -1, period = 0;
    if (v2) {
      snprintf(file, sizeof file, "%s/cpu.max", dir);
      read_quota(file, &quota, &period);
    } else {
      snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", dir);
      read_quota(file, &quota, NULL);
      snprintf(file, sizeof file, "%s/cpu.cfs_period_us", dir);
      read_quota(file, &period, NULL);
    }
    if (quota > 0 && period > 0) {
      long cpus = (quota + period - 1) / period;
      if (best == 0 || cpus < best) best = cpus;
    }
    slash = strrchr(dir + base, '/');
    if (!slash) return best;
    *slash = '\0';
  }
}

/* Whether a comma-separated list of cgroup v1 controllers names `cpu`. */
static int names_cpu(const char *list) {
  for (;;) {
    size_t n = strcspn(list, ",");
    if (n == 3 && strncmp(list, "cpu", 3) == 0) return 1;
    if (list[n] == '\0') return 0;
    list += n + 1;
  }
}

/* The CPUs the cgroup quotas of this process allow, 0 when there is none. Paths are read below root ("" but in
   tests). A container sees its own cgroup as the mount's root, where the walk up ends. */
static long cgroup_cpus(const char *root) {
  static const char *const v1_mounts[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
  char line[4096], dir[4200];
  long best = 0;
  FILE *f;
  snprintf(dir, sizeof dir, "%s/proc/self/cgroup", root);
  f = fopen(dir, "r");
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) { /* id:controllers:path; v2 is 0::path */
    char *ctrl = strchr(line, ':'), *cg = ctrl ? strchr(ctrl + 1, ':') : NULL;
    size_t m;
    if (!cg) continue;
    *cg++ = '\0';
    ctrl++;
    cg[strcspn(cg, "\n")] = '\0';
    for (m = 0; m < 3; m++) {
      long cpus;
      int base;
      if (*ctrl == '\0') base = snprintf(dir, sizeof dir, "%s/sys/fs/cgroup", root);
      else if (names_cpu(ctrl)) base = snprintf(dir, sizeof dir, "%s/sys/fs/cgroup/%s", root, v1_mounts[m]);
      else break;
      if (base < 0 || (size_t)base + strlen(cg) >= sizeof dir) break;
      strcat(dir, strcmp(cg, "/") == 0 ? "" : cg);
      cpus = quota_up(dir, (size_t)base, *ctrl == '\0');
      if (cpus > 0 && (best == 0 || cpus < best)) best = cpus;
      if (*ctrl == '\0') break;
    }
  }
  fclose(f);
  return best;
}

/* The CPUs this process may use: its affinity mask (taskset, cpusets) capped by its cgroup CPU quota, as OpenMP
   runtimes and Go count them (a pool of every online core, spinning on the one CPU taskset left it, ran the seed
   MLP 14x slower). */
static long usable_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN), q;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
#endif
  q = cgroup_cpus("");
  if (q > 0 && q < n) n = q;
  return n < 1 ? 1 : n;
}

static void run_chunk(int t) {
  long q = pool.n / pool.threads, r = pool.n % pool.threads;
  long begin = t * q + (t < r ? t : r), end = begin + q + (t < r);
  if (begin < end) pool.fn(begin, end, pool.ctx);
}

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg, i;
  unsigned long seen = 0;
  in_pool = 1;
  for (;;) {
    for (i = 0; i < pool.spin && __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) == seen; i++) spin_round(i);
    if (__atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) == seen) {
      pthread_mutex_lock(&pool.mu);
      while (pool.gen == seen) pthread_cond_wait(&pool.wake, &pool.mu);
      pthread_mutex_unlock(&pool.mu);
    }
    seen = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
    run_chunk(t);
    if (__atomic_sub_fetch(&pool.pending, 1, __ATOMIC_ACQ_REL) == 0) {
      pthread_mutex_lock(&pool.mu);
      pthread_cond_signal(&pool.done);
      pthread_mutex_unlock(&pool.mu);
    }
  }
  return NULL;
}

static void pool_start(void) {
  const char *env = getenv("KILN_NUM_THREADS");
  long n = 0, cores = usable_cpus();
  int i;
  if (env && *env) {
    char *end;
    n = strtol(env, &end, 10);
    if (*end != '\0' || n < 1) n = 0;
  }
  if (n == 0) n = cores;
  if (n < 1) n = 1;
  if (n > 256) n = 256;
  pool.threads = (int)n;
  pool.spin = n <= cores ? 4000 : 0; /* spinning threads would starve each other on fewer CPUs */
  for (i = 1; i < pool.threads; i++) {
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, worker, (void *)(intptr_t)i) != 0) {
      pool.threads = i; /* run with the threads we got */
      pthread_attr_destroy(&attr);
      break;
    }
    pthread_attr_destroy(&attr);
  }
}

int kiln_num_threads(void) {
  pthread_once(&pool_once, pool_start);
  return pool.threads;
}

void kiln_parallel_for(long n, void (*fn)(long begin, long end, void *ctx), void *ctx) {
  int i;
  if (n <= 0) return;
  if (in_pool || n == 1 || kiln_num_threads() == 1 || pthread_mutex_trylock(&pool.call_mu) != 0) {
    fn(0, n, ctx);
    return;
  }
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  __atomic_store_n(&pool.pending, pool.threads - 1, __ATOMIC_RELEASE);
  pthread_mutex_lock(&pool.mu);
  __atomic_store_n(&pool.gen, pool.gen + 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.mu);
  in_pool = 1;
  run_chunk(0);
  in_pool = 0;
  for (i = 0; i < pool.spin && __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) != 0; i++) spin_round(i);
  if (__atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) != 0) {
    pthread_mutex_lock(&pool.mu);
    while (__atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) != 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
  }
  pthread_mutex_unlock(&pool.call_mu);
}
