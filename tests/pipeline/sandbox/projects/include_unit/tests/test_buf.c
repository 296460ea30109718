#include <stdio.h>
#include "../src/buf.c"
int main(void) {
    int v[] = {1, 2, 3};
    if (buf_sum(v, 3) != 6) { puts("FAIL buf_sum"); return 1; }
    return 0;
}
