#include "hash.h"
unsigned hash_str(const char *s) {
    unsigned h = 5381;
    while (*s) h = h * 33u + (unsigned char)*s++;
    return h;
}

#ifdef HASH_TEST
#include <stdio.h>
int main(void) {
    if (hash_str("") != 5381u) { puts("FAIL empty"); return 1; }
    if (hash_str("a") != 5381u * 33u + 'a') { puts("FAIL a"); return 1; }
    puts("hash self-test ok");
    return 0;
}
#endif
