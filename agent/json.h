/* json: the few helpers needed to print machine-readable reports. */
#ifndef HOMEPORT_JSON_H
#define HOMEPORT_JSON_H

#include <stdio.h>

/* Print s as a JSON string, quotes included.  Control characters are
 * escaped; bytes that are not valid UTF-8 (file names may hold anything)
 * are printed as \u00XX so that the output is always valid JSON. */
void json_str(FILE *f, const char *s);

#endif
