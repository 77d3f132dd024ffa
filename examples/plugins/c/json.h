// Just enough JSON for a plugin's load config and request parameters: find a key of an object
// and read a string or number value.  Values are pointers into the NUL-terminated document.
#ifndef WASMFLOW_EXAMPLE_JSON_H
#define WASMFLOW_EXAMPLE_JSON_H

#include <stdbool.h>

// The value of `key` in the object that `obj` points at (leading whitespace allowed), or NULL
// when `obj` is not an object, has no such key, or is malformed before the key is found.
const char *json_get(const char *obj, const char *key);

// A malloc'ed, decoded copy of the string value at `v`, or NULL when it is not a string or
// uses \u escapes outside ASCII.
char *json_string(const char *v);

// Reads the number at `v` into `out`; false when it is not a number.
bool json_number(const char *v, double *out);

#endif
