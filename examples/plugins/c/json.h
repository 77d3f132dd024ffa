// Just enough JSON for a plugin's load config and request parameters: find a key of an object
// or an array's item and read a string or number value.  Values are pointers into the
// NUL-terminated document.
#ifndef WASMFLOW_EXAMPLE_JSON_H
#define WASMFLOW_EXAMPLE_JSON_H

#include <stdbool.h>
#include <stddef.h>

// The value of `key` in the object that `obj` points at (leading whitespace allowed), or NULL
// when `obj` is not an object, has no such key, or is malformed before the key is found.
const char *json_get(const char *obj, const char *key);

// A malloc'ed, decoded copy of the string value at `v`, or NULL when it is not a string or
// uses \u escapes outside ASCII.
char *json_string(const char *v);

// Reads the number at `v` into `out`; false when it is not a number.
bool json_number(const char *v, double *out);

// The item at `index` of the array that `arr` points at (leading whitespace allowed), or NULL
// when `arr` is not an array, is shorter, or is malformed before that item.
const char *json_item(const char *arr, size_t index);

#endif
