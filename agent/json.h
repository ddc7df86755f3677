/* json: the few helpers needed to print machine-readable reports. */
#ifndef HOMEPORT_JSON_H
#define HOMEPORT_JSON_H

#include <stdio.h>

/* Print s as a JSON string, quotes included.  Control characters are
 * escaped; bytes that are not valid UTF-8 (file names may hold anything)
 * are printed as \u00XX so that the output is always valid JSON. */
void json_str(FILE *f, const char *s);

/* The whole number under key at the top level of a flat JSON object such
 * as {"port": 10809} (a service's answer).  0, or -EINVAL when text is not
 * such an object or key is missing or not a number from 0 to max. */
int json_get_uint(const char *text, const char *key, unsigned long max, unsigned long *out);

#endif
