#include "json.h"

#include <stdlib.h>
#include <string.h>

static const char *ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

// Skips a string starting at its opening quote; returns the position after the closing quote.
static const char *skip_string(const char *p) {
  if (*p != '"') return NULL;
  for (p++; *p && *p != '"'; p++) {
    if (*p == '\\') {
      p++;
      if (!*p) return NULL;
    }
  }
  return *p == '"' ? p + 1 : NULL;
}

// Skips any value; returns the position after it, or NULL when malformed.
static const char *skip_value(const char *p) {
  p = ws(p);
  if (*p == '"') return skip_string(p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = skip_string(ws(p));
        if (p == NULL) return NULL;
        p = ws(p);
        if (*p != ':') return NULL;
        p++;
      }
      p = skip_value(p);
      if (p == NULL) return NULL;
      p = ws(p);
      if (*p == close) return p + 1;
      if (*p != ',') return NULL;
      p++;
    }
  }
  // A number, true, false or null.
  const char *start = p;
  while (*p && strchr("+-.0123456789eEtruefalsn", *p) != NULL) p++;
  return p > start ? p : NULL;
}

// Whether the string at `p` (at its opening quote) equals `key`, escapes aside.
static bool key_equals(const char *p, const char *key) {
  size_t n = strlen(key);
  return strncmp(p + 1, key, n) == 0 && p[1 + n] == '"';
}

const char *json_get(const char *obj, const char *key) {
  const char *p = ws(obj);
  if (*p != '{') return NULL;
  p = ws(p + 1);
  if (*p == '}') return NULL;
  for (;;) {
    p = ws(p);
    if (*p != '"') return NULL;
    bool match = key_equals(p, key);
    p = skip_string(p);
    if (p == NULL) return NULL;
    p = ws(p);
    if (*p != ':') return NULL;
    p = ws(p + 1);
    if (match) return p;
    p = skip_value(p);
    if (p == NULL) return NULL;
    p = ws(p);
    if (*p != ',') return NULL;
    p++;
  }
}

char *json_string(const char *v) {
  v = ws(v);
  const char *end = skip_string(v);
  if (end == NULL) return NULL;
  char *out = malloc((size_t)(end - v));
  size_t at = 0;
  for (const char *p = v + 1; p < end - 1; p++) {
    if (*p != '\\') {
      out[at++] = *p;
      continue;
    }
    p++;
    switch (*p) {
      case '"': case '\\': case '/': out[at++] = *p; break;
      case 'b': out[at++] = '\b'; break;
      case 'f': out[at++] = '\f'; break;
      case 'n': out[at++] = '\n'; break;
      case 'r': out[at++] = '\r'; break;
      case 't': out[at++] = '\t'; break;
      case 'u': {
        char hex[5] = {0};
        strncpy(hex, p + 1, 4);
        char *rest;
        long c = strtol(hex, &rest, 16);
        if (*rest != '\0' || c <= 0 || c > 0x7f) {
          free(out);
          return NULL;
        }
        out[at++] = (char)c;
        p += 4;
        break;
      }
      default: free(out); return NULL;
    }
  }
  out[at] = '\0';
  return out;
}

bool json_number(const char *v, double *out) {
  v = ws(v);
  if (!(*v == '-' || (*v >= '0' && *v <= '9'))) return false;
  char *end;
  double d = strtod(v, &end);
  if (end == v) return false;
  *out = d;
  return true;
}

const char *json_item(const char *arr, size_t index) {
  const char *p = ws(arr);
  if (*p != '[') return NULL;
  p = ws(p + 1);
  if (*p == ']') return NULL;
  for (size_t i = 0;; i++) {
    if (i == index) return p;
    p = skip_value(p);
    if (p == NULL) return NULL;
    p = ws(p);
    if (*p != ',') return NULL;  // the end of the array, or malformed
    p = ws(p + 1);
  }
}
