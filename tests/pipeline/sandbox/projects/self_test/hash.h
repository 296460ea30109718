#ifndef HASH_H
#define HASH_H
unsigned hash_str(const char *s);
#endif
