#ifndef STRUTIL_H
#define STRUTIL_H
int str_len(const char *s);
#endif
