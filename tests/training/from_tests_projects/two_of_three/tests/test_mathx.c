#include <stdio.h>
#include "../src/mathx.h"

int main(void)
{
    int failed = 0;
    if (mathx_add(2, 3) != 5) { printf("FAIL: mathx_add\n"); failed++; }
    if (mathx_mul(4, 5) != 20) { printf("FAIL: mathx_mul\n"); failed++; }
    /* mathx_clamp is not tested: blanking it must not count as covered. */
    printf("%d failed\n", failed);
    return failed != 0;
}
